//! The assistant: one state machine that owns a voice turn from key press to last word spoken.
//!
//! ```text
//!            Press            Release             heard              first audio
//!   Idle ─────────▶ Listening ───────▶ Transcribing ─────▶ Thinking ───────────▶ Speaking
//!    ▲  Ask(text) ─────────────────────────────────────────▲                      │
//!    └──────────────────────── reply spoken (or shown) ◀────┴──────────────────────┘
//!   Press while Transcribing/Thinking/Speaking: barge-in (audio silenced, generation
//!   cancelled) and straight to Listening. Stop: the same, back to Idle.
//! ```
//!
//! Three threads: the *owner* (the only one that changes the state; it holds the microphone),
//! the *brain* (speech to text, then the LLM, cutting the reply into sentences as it streams) and
//! the *voice* (synthesizes each sentence and queues it for playback while generation goes on).
//! The hotkey, the window, the tray and the CLI all send [`Command`]s to the same [`Assistant`]
//! and read the same [`Event`]s. While the key is held, a pause in the speech has the brain
//! transcribe what was said so far (`listen_ahead`), so that a release after it finds the
//! question ready.

mod brain;
mod capture;
mod conversation;
mod listen_ahead;
mod owner;
mod voice;

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use capture::{Capture, Clip};
pub use conversation::Conversation;

use crate::audio::AudioError;
use crate::llm::{LlmConfig, LlmError, Message, RemoteConfig, Sampling, StopReason};
use crate::speech::{SpeechConfig, SpeechError, SpeechTimings};
use crate::sync::lock;
use crate::tts::{TtsError, VoiceConfig};

/// The assistant's default persona.
pub const DEFAULT_SYSTEM: &str =
    "You are Murmur, a friendly voice assistant running on this computer. Answer in one or two short sentences.";

/// Exchanges (question and answer) kept as context for the next question.
pub const HISTORY_TURNS: usize = 4;

/// Where the assistant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for the user.
    Idle,
    /// Recording while push-to-talk is held.
    Listening,
    /// Turning the recording into text.
    Transcribing,
    /// Generating the reply (not yet audible).
    Thinking,
    /// The reply is being spoken (generation may still be running).
    Speaking,
}

/// What drives the assistant: the hotkey, the window, the tray and the CLI send these.
#[derive(Debug, Clone)]
pub enum Command {
    /// Push-to-talk pressed: start listening (interrupting a reply in progress).
    Press,
    /// Push-to-talk released: answer what was said.
    Release,
    /// A typed question (interrupting a reply in progress).
    Ask(String),
    /// Stop whatever is happening and go idle.
    Stop,
    /// Continue from these messages (user and assistant turns, oldest first); empty: a new
    /// chat. Interrupts a reply in progress.
    Converse(Vec<Message>),
    /// Answer the next turns with these settings (nothing is reloaded; a turn in progress keeps
    /// the ones it started with).
    Retune(TurnSettings),
}

/// What the assistant reports, in order. Turn-bound events carry the turn's number; events of
/// an interrupted turn may still arrive after [`Event::Interrupted`] (its reply so far).
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The state changed.
    State {
        /// The new state.
        state: State,
    },
    /// The question of a turn: typed, or heard (the transcript).
    Question {
        /// The turn.
        turn: u64,
        /// The text.
        text: String,
        /// Whether it was spoken (and transcribed) rather than typed.
        spoken: bool,
    },
    /// The microphone's level while listening, about 20 times a second (RMS, 0–1).
    Level {
        /// The level.
        rms: f32,
    },
    /// A piece of the reply as it is generated.
    Token {
        /// The turn.
        turn: u64,
        /// The text (may be empty inside a multi-byte character).
        text: String,
    },
    /// A complete sentence of the reply, handed to speech synthesis.
    Sentence {
        /// The turn.
        turn: u64,
        /// The sentence as generated.
        text: String,
    },
    /// Generation ended.
    Reply {
        /// The turn.
        turn: u64,
        /// The whole reply.
        text: String,
        /// Why it ended.
        #[serde(serialize_with = "stop_name")]
        #[cfg_attr(feature = "specta", specta(type = String))]
        stop: StopReason,
    },
    /// A turn was cut short by a press, a new question or stop: its audio was silenced and its
    /// generation cancelled.
    Interrupted {
        /// The turn.
        turn: u64,
        /// Seconds of its synthesized speech that were queued and will never be heard.
        unspoken_seconds: f64,
    },
    /// A turn is over: the reply was generated and, with voice output on, spoken.
    Done {
        /// The turn.
        turn: u64,
        /// When each stage finished.
        timeline: Timeline,
    },
    /// Something the user should know that did not stop the assistant.
    Notice {
        /// What, and what to do.
        message: String,
    },
    /// A turn failed.
    Error {
        /// The turn, if one was running.
        turn: Option<u64>,
        /// What went wrong, and what to do.
        message: String,
    },
}

fn stop_name<S: serde::Serializer>(stop: &StopReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(stop.name())
}

/// When each stage of a turn finished, in milliseconds after the end of speech (the key
/// release, or the typed question).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Timeline {
    /// The transcript was ready (voice turns only).
    pub transcript_ms: Option<f64>,
    /// The transcript was made at a pause before the release, with nothing said after it.
    pub heard_ahead: bool,
    /// The first reply token was generated.
    pub first_token_ms: Option<f64>,
    /// The first complete sentence was cut.
    pub first_sentence_ms: Option<f64>,
    /// The first audio sample went out.
    pub first_audio_ms: Option<f64>,
    /// The last audio sample went out.
    pub last_audio_ms: Option<f64>,
    /// Generation ended.
    pub reply_ms: Option<f64>,
    /// Whisper's own breakdown.
    pub speech: Option<SpeechTimings>,
    /// Prompt tokens evaluated (after reusing the cached prefix).
    pub prompt_tokens: u32,
    /// Prompt tokens reused from the previous turn's cache.
    pub reused_tokens: u32,
    /// Tokens generated.
    pub generated_tokens: u32,
    /// Decode speed, tokens per second.
    pub decode_tps: f64,
    /// Seconds of speech played (or written).
    pub audio_seconds: f64,
}

/// Where spoken replies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Replies are shown, not spoken.
    Silent,
    /// The named output device, or the default one.
    Speaker(Option<String>),
    /// A WAV file (headless).
    Wav(PathBuf),
}

/// What may change from one turn to the next without reloading anything
/// ([`Command::Retune`]).
#[derive(Debug, Clone)]
pub struct TurnSettings {
    /// How to pick tokens.
    pub sampling: Sampling,
    /// The system prompt.
    pub system: String,
    /// Whether replies are spoken (where the assistant has an output); otherwise only shown.
    pub speak: bool,
}

impl Default for TurnSettings {
    /// The default sampling and persona, replies spoken.
    fn default() -> Self {
        Self { sampling: Sampling::default(), system: DEFAULT_SYSTEM.into(), speak: true }
    }
}

/// Everything the assistant loads, and the settings its first turns use.
#[derive(Debug, Clone)]
pub struct AssistantConfig {
    /// The chat model.
    pub llm: LlmConfig,
    /// An OpenAI-compatible server that answers instead of the local model (which is then not
    /// loaded).
    pub remote: Option<RemoteConfig>,
    /// The first turns' settings (changed later with [`Command::Retune`]).
    pub turn: TurnSettings,
    /// The ggml Whisper model; `None`: typed questions only.
    pub speech_model: Option<PathBuf>,
    /// How to run Whisper.
    pub speech: SpeechConfig,
    /// The voice replies are spoken with.
    pub voice: VoiceConfig,
    /// Where spoken replies go.
    pub output: Output,
}

impl AssistantConfig {
    /// Defaults around `llm`: the default persona, sampling and voice, the converted speech
    /// model, the default output device; Whisper gets as many threads as the LLM (at most 4).
    pub fn new(llm: LlmConfig) -> Self {
        let speech = SpeechConfig { threads: llm.threads.clamp(1, 4), ..SpeechConfig::default() };
        Self {
            llm,
            remote: None,
            turn: TurnSettings::default(),
            speech_model: Some(crate::models::default_speech_path()),
            speech,
            voice: VoiceConfig::default(),
            output: Output::Speaker(None),
        }
    }
}

/// What can stop the assistant from starting.
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    /// The chat model.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The speech model.
    #[error(transparent)]
    Speech(#[from] SpeechError),
    /// The voice.
    #[error(transparent)]
    Tts(#[from] TtsError),
    /// The output file.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// A worker thread died while starting.
    #[error("the assistant could not start: {0}")]
    Start(String),
}

/// Builds the push-to-talk source on the owner's thread (a microphone must stay on the thread
/// that opened it).
pub type CaptureFactory = Box<dyn FnOnce() -> Result<Box<dyn Capture>, AudioError> + Send>;

/// A running assistant: send it commands, read its events (from any thread).
pub struct Assistant {
    commands: Mutex<Sender<owner::Msg>>,
    events: Mutex<Receiver<Event>>,
    owner: Option<JoinHandle<()>>,
    device: String,
}

impl Assistant {
    /// Loads the models and starts the threads. `capture` opens the push-to-talk source; if it
    /// fails, typed questions still work and a [`Event::Notice`] says why.
    pub fn start(config: AssistantConfig, capture: CaptureFactory) -> Result<Self, AssistantError> {
        let (commands, inbox) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let (owner, device) = owner::spawn(config, capture, commands.clone(), inbox, events_tx)?;
        Ok(Self { commands: Mutex::new(commands), events: Mutex::new(events), owner: Some(owner), device })
    }

    /// Where the LLM runs, in words (the GPU's name, or the CPU and its threads), as loaded.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Sends a command.
    pub fn send(&self, command: Command) {
        let _ = lock(&self.commands).send(owner::Msg::Command(command));
    }

    /// Hands a request of the OpenAI server to the assistant's model, where it takes its turn
    /// with the user's questions; gives it back if the assistant has stopped.
    pub fn serve(&self, job: crate::server::Job) -> Result<(), crate::server::Job> {
        match lock(&self.commands).send(owner::Msg::Serve(job)) {
            Ok(()) => Ok(()),
            Err(mpsc::SendError(owner::Msg::Serve(job))) => Err(job),
            Err(_) => unreachable!("a serve message was sent"),
        }
    }

    /// Waits for the next event; `None` once the assistant has stopped.
    pub fn recv(&self) -> Option<Event> {
        lock(&self.events).recv().ok()
    }

    /// Waits for the next event for up to `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        lock(&self.events).recv_timeout(timeout).ok()
    }
}

impl Drop for Assistant {
    fn drop(&mut self) {
        let _ = lock(&self.commands).send(owner::Msg::Shutdown);
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
    }
}

/// Milliseconds from `from` to `to`.
fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}
