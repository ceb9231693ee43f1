//! The app's one assistant, its chat history and settings; forwards the assistant's events to
//! every window and saves each exchange when its reply is complete.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use murmur_core::assistant::{
    Assistant, AssistantConfig, AssistantError, Capture, CaptureFactory, Clip, Command, Conversation, Event, Output,
};
use murmur_core::audio::Microphone;
use murmur_core::history::{ConversationInfo, ExportFormat, History, SavedMessage};
use murmur_core::llm::{LlmConfig, LlmError, Message};
use murmur_core::models;
use murmur_core::server::{Server, ServerConfig, Submit};
use murmur_core::sync::lock;
use murmur_core::tts::VoiceConfig;
use tauri::AppHandle;
use tauri_specta::Event as _;

use crate::ipc::{AssistantEvent, HistoryEvent, StatusEvent};
use crate::settings::Settings;

/// Where the model stands, for the status line.
#[derive(Debug, Clone, serde::Serialize, specta::Type)]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum Status {
    /// Loading (the text says what).
    Loading(String),
    /// Ready (the text names the model and where it runs).
    Ready(String),
    /// Failed (the text says what to do).
    Failed(String),
}

/// Everything the windows talk to.
pub struct Session {
    app: AppHandle,
    /// A WAV file used instead of the microphone (`--mic-file`).
    mic_file: Option<PathBuf>,
    settings_path: PathBuf,
    settings: Mutex<Settings>,
    assistant: Mutex<Option<Arc<Assistant>>>,
    status: Mutex<Status>,
    /// The open conversation, saved in the history.
    conversation: Mutex<Conversation>,
    /// Counts reloads: a load that a newer one overtook is thrown away.
    loads: AtomicU64,
    /// The OpenAI API, when Settings turn it on; it hands requests to the assistant.
    server: Mutex<Option<Server>>,
    /// What the status line says about the model, and about the server.
    ready: Mutex<(String, String)>,
}

impl Session {
    /// Opens the history and settings in `data_dir` and starts loading the assistant.
    pub fn start(app: AppHandle, data_dir: PathBuf, mic_file: Option<PathBuf>) -> Result<Arc<Self>, String> {
        let history = History::open(&data_dir.join("history.sqlite")).map_err(|e| e.to_string())?;
        let settings_path = data_dir.join("settings.json");
        let settings = Settings::load(&settings_path);
        let session = Arc::new(Self {
            app,
            mic_file,
            settings_path,
            settings: Mutex::new(settings),
            assistant: Mutex::new(None),
            status: Mutex::new(Status::Loading("starting".into())),
            conversation: Mutex::new(Conversation::new(history)),
            loads: AtomicU64::new(0),
            server: Mutex::new(None),
            ready: Mutex::new(Default::default()),
        });
        session.reload();
        Ok(session)
    }

    /// The current status.
    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Stores `status`, then tells the windows: a window that asks right after the event
    /// hears the same status.
    fn set_status(&self, status: Status) {
        *lock(&self.status) = status.clone();
        let _ = StatusEvent(status).emit(&self.app);
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Saves new settings; reloads the models when they changed what is loaded.
    pub fn set_settings(self: &Arc<Self>, new: Settings) -> Result<(), String> {
        let old = self.settings();
        if (&old.hotkey, &old.quick_hotkey) != (&new.hotkey, &new.quick_hotkey) {
            if let Err(e) = crate::hotkey::register(&self.app, &new) {
                // Keep the shortcuts that worked.
                let _ = crate::hotkey::register(&self.app, &old);
                return Err(e);
            }
        }
        new.save(&self.settings_path)?;
        *lock(&self.settings) = new.clone();
        if old.needs_reload(&new) {
            self.reload();
            return Ok(());
        }
        if old.turn_changed(&new) {
            if let Some(assistant) = lock(&self.assistant).as_ref() {
                assistant.send(Command::Retune(new.turn()));
            }
        }
        if old.serving_changed(&new) {
            self.restart_server();
        }
        Ok(())
    }

    /// Goes back to the local model (one click from the status line after a remote engine
    /// failed).
    pub fn use_local_model(self: &Arc<Self>) -> Result<(), String> {
        let settings = Settings { remote_url: None, ..self.settings() };
        self.set_settings(settings)
    }

    /// Stops the OpenAI API and, when Settings want it and a model is loaded, serves it again
    /// through the current assistant (in the background: the old server first finishes the
    /// requests it is streaming, and its port is then free for the new one).
    fn restart_server(self: &Arc<Self>) {
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            drop(lock(&me.server).take());
            let settings = me.settings();
            let assistant = lock(&me.assistant).as_ref().map(Arc::downgrade);
            let line = match assistant {
                Some(assistant) if settings.serve_api => {
                    let submit: Submit = Box::new(move |job| match assistant.upgrade() {
                        Some(a) => a.serve(job),
                        None => Err(job),
                    });
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], settings.serve_port));
                    let config = ServerConfig { addr, model_id: model_id(&settings), api_key: None, cors_origin: None };
                    match Server::start_on(config, submit) {
                        Ok(server) => {
                            let line = format!("OpenAI API at http://{}/v1", server.addr());
                            *lock(&me.server) = Some(server);
                            line
                        }
                        Err(e) => format!("OpenAI API off: {e}"),
                    }
                }
                _ => String::new(),
            };
            let status = {
                let mut ready = lock(&me.ready);
                ready.1 = line;
                ready_text(&ready)
            };
            if matches!(me.status(), Status::Ready(_)) {
                me.set_status(Status::Ready(status));
            }
        });
    }

    /// Drops the assistant and loads a new one with the current settings, in the background.
    fn reload(self: &Arc<Self>) {
        if let Some(old) = lock(&self.assistant).take() {
            // Shutting down joins its threads: not on the caller's (maybe the UI's) thread.
            std::thread::spawn(move || drop(old));
        }
        lock(&self.ready).1.clear();
        self.set_status(Status::Loading("loading the models…".into()));
        let load = self.loads.fetch_add(1, Ordering::SeqCst) + 1;
        let (me, settings, mic_file) = (Arc::clone(self), self.settings(), self.mic_file.clone());
        let microphone = settings.input_device.clone();
        std::thread::spawn(move || match Assistant::start(config(&settings), capture(mic_file, microphone)) {
            Ok(assistant) => {
                let assistant = Arc::new(assistant);
                // Under the slot's lock, so a conversation opened meanwhile is not missed.
                let mut slot = lock(&me.assistant);
                if me.loads.load(Ordering::SeqCst) != load {
                    return;
                }
                lock(&me.conversation).forget_turns();
                pump(Arc::downgrade(&assistant), Arc::downgrade(&me));
                assistant.send(Command::Converse(me.conversation_messages().unwrap_or_default()));
                // Per-turn settings changed while it loaded reached no assistant.
                assistant.send(Command::Retune(me.settings().turn()));
                let device = assistant.device().to_string();
                *slot = Some(assistant);
                drop(slot);
                let line = match settings.remote() {
                    Some(_) => format!("{device} (remote engine)"),
                    None => {
                        let model = settings.model.clone().unwrap_or_else(models::default_llm_path);
                        let name =
                            model.file_name().map_or_else(|| model.display().to_string(), |n| n.to_string_lossy().into_owned());
                        format!("{name} on {device}")
                    }
                };
                let status = {
                    let mut ready = lock(&me.ready);
                    ready.0 = line;
                    ready_text(&ready)
                };
                me.set_status(Status::Ready(status));
                me.restart_server();
            }
            Err(e) if me.loads.load(Ordering::SeqCst) == load => {
                me.set_status(Status::Failed(format!("{e}. {}", remedy(&e))));
            }
            Err(_) => {}
        });
    }

    /// Sends a command to the assistant, if it is loaded.
    pub fn send(&self, command: Command) -> Result<(), String> {
        match lock(&self.assistant).as_ref() {
            Some(a) => {
                a.send(command);
                Ok(())
            }
            None => Err(match self.status() {
                Status::Failed(why) => why,
                _ => "Murmur is still loading the models; try again in a moment.".into(),
            }),
        }
    }

    /// Starts a new conversation.
    pub fn new_chat(&self) {
        lock(&self.conversation).start_new();
        self.converse(Vec::new());
    }

    /// Hands the assistant the conversation to continue; one still loading picks it up when
    /// it is ready.
    fn converse(&self, messages: Vec<Message>) {
        if let Some(a) = lock(&self.assistant).as_ref() {
            a.send(Command::Converse(messages));
        }
    }

    /// Conversations, newest first; with `query`, those that mention it.
    pub fn conversations(&self, query: Option<&str>) -> Result<Vec<ConversationInfo>, String> {
        lock(&self.conversation).history().list(query).map_err(|e| e.to_string())
    }

    /// Opens a conversation to read and continue; returns its messages.
    pub fn open(&self, id: i64) -> Result<Vec<SavedMessage>, String> {
        let messages = lock(&self.conversation).open(id).map_err(|e| e.to_string())?;
        self.converse(messages.iter().map(to_message).collect());
        Ok(messages)
    }

    /// Renames a conversation.
    pub fn rename(&self, id: i64, title: &str) -> Result<(), String> {
        lock(&self.conversation).rename(id, title).map_err(|e| e.to_string())?;
        // No id: the renamed conversation need not be the one on screen.
        let _ = HistoryEvent(None).emit(&self.app);
        Ok(())
    }

    /// A conversation written out in `format`, and the file name it suggests.
    pub fn export(&self, id: i64, format: ExportFormat) -> Result<(String, String), String> {
        let conversation = lock(&self.conversation);
        let history = conversation.history();
        let text = history.export(id, format).map_err(|e| e.to_string())?;
        let title = history.info(id).map_err(|e| e.to_string())?.title;
        let stem: String = title.chars().map(|c| if c.is_alphanumeric() || c == ' ' || c == '-' { c } else { ' ' }).collect();
        let stem = stem.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok((text, format!("{}.{}", if stem.is_empty() { "conversation" } else { &stem }, format.extension())))
    }

    /// Deletes a conversation (starting a new chat if it was the open one).
    pub fn delete(&self, id: i64) -> Result<(), String> {
        let was_open = lock(&self.conversation).delete(id).map_err(|e| e.to_string())?;
        if was_open {
            self.converse(Vec::new());
        }
        Ok(())
    }

    fn conversation_messages(&self) -> Option<Vec<Message>> {
        let conversation = lock(&self.conversation);
        let id = conversation.id()?;
        Some(conversation.history().messages(id).ok()?.iter().map(to_message).collect())
    }

    /// Saves the exchange an event completes, if it completes one, and tells the windows the
    /// history changed.
    fn record(&self, event: &Event) {
        match lock(&self.conversation).record(event) {
            Some(Ok(id)) => {
                let _ = HistoryEvent(Some(id)).emit(&self.app);
            }
            Some(Err(e)) => {
                tracing::error!("{e}");
                let message = format!("the exchange was not saved: {e}");
                let _ = AssistantEvent(Event::Error { turn: None, message }).emit(&self.app);
            }
            None => {}
        }
    }
}

/// The status line of a loaded model: where it runs, and where the OpenAI API is served.
fn ready_text((model, server): &(String, String)) -> String {
    match server.is_empty() {
        true => model.clone(),
        false => format!("{model} · {server}"),
    }
}

/// The model's name in the OpenAI API: the remote one, the catalog id, or the file's name.
fn model_id(s: &Settings) -> String {
    if let Some(remote) = s.remote() {
        return remote.model.unwrap_or_else(|| "remote".into());
    }
    let manifest = models::Manifest::builtin();
    let path = s.model.clone().unwrap_or_else(models::default_llm_path);
    let entry = manifest.with_role(models::Role::Llm).find(|e| models::llm_path(e) == path);
    entry.map_or_else(|| path.file_stem().map_or_else(|| "local".into(), |n| n.to_string_lossy().into_owned()), |e| e.id.clone())
}

fn to_message(m: &SavedMessage) -> Message {
    Message { role: m.role.clone(), content: m.content.clone() }
}

/// What the window says fixes an assistant that could not start.
fn remedy(e: &AssistantError) -> &'static str {
    match e {
        AssistantError::Llm(LlmError::Open { .. }) => "Pick or download a model in Settings.",
        AssistantError::Llm(LlmError::NoGpu(_)) => "Choose Auto or CPU as the backend in Settings.",
        AssistantError::Speech(_) => "Pick another speech model in Settings.",
        AssistantError::Tts(_) => "Pick another voice in Settings.",
        _ => "Fix it in Settings.",
    }
}

fn config(s: &Settings) -> AssistantConfig {
    let mut llm = LlmConfig::new(s.model.clone().unwrap_or_else(models::default_llm_path));
    llm.backend = s.backend;
    let speech = models::speech_path(&s.stt);
    let mut config = AssistantConfig {
        turn: s.turn(),
        // Without the speech model, typed questions still work (push-to-talk says why not).
        speech_model: speech.exists().then_some(speech),
        voice: VoiceConfig { voice: s.voice.clone(), rate: s.voice_rate },
        // The voice is loaded even while it is off, so turning it on needs no reload.
        output: Output::Speaker(s.output_device.clone()),
        remote: s.remote(),
        ..AssistantConfig::new(llm)
    };
    config.speech.language = s.stt_language.clone();
    config
}

/// Push-to-talk's audio: the `--mic-file` recording, else the microphone Settings name (or the
/// system's default).
fn capture(mic_file: Option<PathBuf>, microphone: Option<String>) -> CaptureFactory {
    Box::new(move || -> Result<Box<dyn Capture>, _> {
        Ok(match &mic_file {
            Some(path) => Box::new(Clip::open(path)?),
            None => Box::new(Microphone::open(microphone.as_deref())?),
        })
    })
}

/// Forwards an assistant's events to the windows until it is dropped, saving exchanges.
fn pump(assistant: Weak<Assistant>, session: Weak<Session>) {
    std::thread::spawn(move || loop {
        let Some(a) = assistant.upgrade() else { return };
        let event = a.next_event(Duration::from_millis(200));
        drop(a);
        let (Some(event), Some(session)) = (event, session.upgrade()) else { continue };
        session.record(&event);
        let _ = AssistantEvent(event).emit(&session.app);
    });
}
