//! The brain thread: speech to text, then the LLM, streaming the reply's tokens to the owner and
//! its sentences to the voice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::owner::{Msg, Progress};
use super::{listen_ahead, voice, AssistantConfig, AssistantError, TurnSettings, HISTORY_TURNS};
use crate::llm::{Engine, EngineConfig, Message, Sampling};
use crate::speech::{Transcriber, Transcript};
use crate::sync::lock;
use crate::tts::{ReasoningFilter, SentenceSplitter};

/// Longest a reply's generation waits for the voice to queue the reply's first spoken piece,
/// when the model runs on the CPU the voice synthesizes on. On two cores the two slow each other
/// down, and the first audio is what a listener waits for: the model is far ahead of speech.
const VOICE_FIRST_WAIT: Duration = Duration::from_millis(500);

/// What the user asked.
pub(super) enum Question {
    /// A recording to transcribe first.
    Audio(Vec<f32>),
    /// Typed text.
    Text(String),
}

/// What the brain is asked to do.
pub(super) enum Work {
    /// Answer a turn.
    Turn(Job),
    /// Replace the conversation (user and assistant messages, oldest first).
    Converse(Vec<Message>),
    /// Answer from now on with these settings.
    Retune(TurnSettings),
    /// Answer a request of the OpenAI server with the same model.
    Serve(crate::server::Job),
    /// Transcribe what was said up to a pause while the key is still held (see
    /// [`listen_ahead`]), and evaluate the prompt it would make.
    ListenAhead(Preview),
}

/// A recording up to a pause.
pub(super) struct Preview {
    /// Counts the previews sent; only the latest one is worth doing.
    pub id: u64,
    /// 16 kHz mono.
    pub audio: Vec<f32>,
}

/// A preview's transcript, kept for the turn it may belong to.
struct HeardAhead {
    id: u64,
    samples: usize,
    transcript: Transcript,
}

/// One turn for the brain.
pub(super) struct Job {
    pub turn: u64,
    pub question: Question,
    /// The audio epoch the reply is to be heard in.
    pub epoch: u64,
    /// Set when the turn is interrupted.
    pub cancel: Arc<AtomicBool>,
    /// The last preview of this turn's recording, if a pause made one.
    pub preview: Option<u64>,
}

/// The models and the conversation so far.
pub(super) struct Brain {
    llm: Engine,
    speech: Option<Transcriber>,
    sampling: Sampling,
    system: Message,
    /// Whether replies go to the voice.
    speak: bool,
    history: Vec<Message>,
    owner: Sender<Msg>,
    voice: Option<Sender<voice::Job>>,
    /// The id of the newest preview sent (set by the owner).
    latest_preview: Arc<AtomicU64>,
    /// The transcript of the newest preview done.
    heard_ahead: Option<HeardAhead>,
}

impl Brain {
    /// Loads the models and primes the LLM's cache with the system prompt. The owner counts its
    /// previews in `latest_preview`.
    pub fn load(config: &AssistantConfig, owner: Sender<Msg>, latest_preview: Arc<AtomicU64>) -> Result<Self, AssistantError> {
        let speech = match &config.speech_model {
            Some(path) => Some(Transcriber::load(path, config.speech.clone())?),
            None => None,
        };
        let system = Message { role: "system".into(), content: config.turn.system.clone() };
        let mut llm = Engine::start(match &config.remote {
            Some(remote) => EngineConfig::Remote(remote.clone()),
            None => EngineConfig::Local(config.llm.clone()),
        })?;
        // Every later prompt starts with the system prompt and reuses its evaluation.
        llm.prime(std::slice::from_ref(&system))?;
        Ok(Self {
            llm,
            speech,
            sampling: config.turn.sampling.clone(),
            system,
            speak: config.turn.speak,
            history: Vec::new(),
            owner,
            voice: None,
            latest_preview,
            heard_ahead: None,
        })
    }

    /// Sends the sentences of every reply from now on to `voice` (`None`: replies are not spoken).
    pub fn speak_to(&mut self, voice: Option<Sender<voice::Job>>) {
        self.voice = voice;
    }

    /// Where the LLM runs, in words.
    pub fn device(&self) -> String {
        self.llm.device()
    }

    /// Works until the owner hangs up.
    pub fn run(mut self, work: Receiver<Work>) {
        for w in work {
            match w {
                Work::Turn(job) => self.turn(job),
                Work::Converse(messages) => {
                    let excess = messages.len().saturating_sub(2 * HISTORY_TURNS);
                    self.history = messages.into_iter().skip(excess).collect();
                }
                Work::Serve(job) => job.run(&mut self.llm),
                Work::Retune(settings) => self.retune(settings),
                Work::ListenAhead(preview) => self.listen_ahead(preview),
            }
        }
    }

    /// Takes new per-turn settings; a new system prompt is evaluated into the cache at once, as
    /// at load, so the next turn does not wait for it.
    fn retune(&mut self, settings: TurnSettings) {
        self.sampling = settings.sampling;
        self.speak = settings.speak;
        if settings.system != self.system.content {
            self.system.content = settings.system;
            if let Err(e) = self.llm.prime(std::slice::from_ref(&self.system)) {
                tracing::warn!("evaluating the new system prompt failed: {e}");
            }
        }
    }

    /// Readies speech recognition for the next turn while nobody waits for it.
    fn prepare_speech(&mut self) {
        if let Some(Err(e)) = self.speech.as_mut().map(Transcriber::prepare) {
            tracing::warn!("{e}");
        }
    }

    /// Transcribes a preview and evaluates the prompt it makes, unless a later pause has
    /// already sent a newer one.
    fn listen_ahead(&mut self, preview: Preview) {
        if preview.id != self.latest_preview.load(Ordering::SeqCst) {
            return;
        }
        self.heard_ahead = None;
        let Some(speech) = self.speech.as_mut() else { return };
        let transcript = match speech.transcribe(&preview.audio) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(id = preview.id, "nothing heard ahead: {e}");
                return self.prepare_speech();
            }
        };
        tracing::debug!(id = preview.id, seconds = transcript.timings.audio_s, text = %transcript.text, "heard ahead");
        let user = Message { role: "user".into(), content: transcript.text.clone() };
        if let Err(e) = self.llm.prime(&self.prompt(user)) {
            tracing::warn!("evaluating the prompt ahead failed: {e}");
        }
        self.heard_ahead = Some(HeardAhead { id: preview.id, samples: preview.audio.len(), transcript });
        self.prepare_speech();
    }

    /// The conversation so far, then `user`.
    fn prompt(&self, user: Message) -> Vec<Message> {
        std::iter::once(&self.system).chain(&self.history).cloned().chain(std::iter::once(user)).collect()
    }

    fn send(&self, turn: u64, p: Progress) {
        let _ = self.owner.send(Msg::Progress(turn, p));
    }

    fn turn(&mut self, job: Job) {
        let ahead = self.heard_ahead.take();
        if job.cancel.load(Ordering::SeqCst) {
            return;
        }
        let question = match job.question {
            Question::Text(text) => text,
            Question::Audio(audio) => {
                // What was heard ahead is the question if nothing was said after that pause.
                let ahead = ahead
                    .filter(|h| Some(h.id) == job.preview && listen_ahead::says_no_more_than(&audio, h.samples))
                    .map(|h| h.transcript);
                let early = ahead.is_some();
                let heard = match (ahead, &mut self.speech) {
                    (Some(transcript), _) => Ok(transcript),
                    (None, Some(t)) => t.transcribe(&audio).map_err(|e| e.to_string()),
                    (None, None) => Err("speech recognition is off: no speech model is installed".into()),
                };
                let text = heard.as_ref().map(|t| t.text.clone()).ok();
                self.send(job.turn, Progress::Heard { result: heard, at: Instant::now(), ahead: early });
                match text {
                    Some(t) if !job.cancel.load(Ordering::SeqCst) => t,
                    _ => return self.prepare_speech(),
                }
            }
        };
        let user = Message { role: "user".into(), content: question };
        let messages = self.prompt(user.clone());
        let stream = Arc::new(Mutex::new(ReplyStream {
            turn: job.turn,
            epoch: job.epoch,
            reasoning: ReasoningFilter::default(),
            splitter: SentenceSplitter::for_speech(),
            owner: self.owner.clone(),
            voice: self.voice.clone().filter(|_| self.speak),
            voice_first: self.llm.backend_name() == "cpu",
            spoken: false,
        }));
        let (s, cancel) = (Arc::clone(&stream), Arc::clone(&job.cancel));
        let result = self.llm.chat(&messages, &self.sampling, move |text| {
            lock(&s).text(text);
            !cancel.load(Ordering::SeqCst)
        });
        if !job.cancel.load(Ordering::SeqCst) {
            lock(&stream).finish();
        }
        for message in self.llm.take_notices() {
            self.send(job.turn, Progress::Notice(message));
        }
        if let Ok((g, _)) = &result {
            if !g.text.trim().is_empty() {
                self.history.push(user);
                self.history.push(Message { role: "assistant".into(), content: g.text.clone() });
                let excess = self.history.len().saturating_sub(2 * HISTORY_TURNS);
                self.history.drain(..excess);
            }
        }
        self.send(job.turn, Progress::Reply(result.map_err(|e| e.to_string()), Instant::now()));
        self.prepare_speech();
        if let Some(v) = &self.voice {
            let _ = v.send(voice::Job::Finish { turn: job.turn, epoch: job.epoch });
        }
    }
}

/// Where a reply's text goes while it is generated.
struct ReplyStream {
    turn: u64,
    epoch: u64,
    /// Takes a reasoning block out of what is spoken (the UI shows it folded away).
    reasoning: ReasoningFilter,
    splitter: SentenceSplitter,
    owner: Sender<Msg>,
    voice: Option<Sender<voice::Job>>,
    /// Generation waits (up to [`VOICE_FIRST_WAIT`]) for the first spoken piece to be queued.
    voice_first: bool,
    /// A piece was handed to the voice.
    spoken: bool,
}

impl ReplyStream {
    fn text(&mut self, text: &str) {
        let now = Instant::now();
        let _ = self.owner.send(Msg::Progress(self.turn, Progress::Token(text.to_string(), now)));
        let spoken = self.reasoning.push(text);
        let sentences = self.splitter.push(&spoken);
        self.sentences(sentences, now);
    }

    fn finish(&mut self) {
        let rest = self.reasoning.finish();
        let mut sentences = self.splitter.push(&rest);
        sentences.extend(self.splitter.finish());
        self.sentences(sentences, Instant::now());
    }

    fn sentences(&mut self, sentences: Vec<String>, now: Instant) {
        for s in sentences {
            let _ = self.owner.send(Msg::Progress(self.turn, Progress::Sentence(s.clone(), now)));
            let Some(v) = &self.voice else { continue };
            let (waiting, wait) = if self.voice_first && !self.spoken {
                let (tx, rx) = mpsc::channel::<()>();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            self.spoken = true;
            let _ = v.send(voice::Job::Speak { turn: self.turn, epoch: self.epoch, text: s, waiting });
            if let Some(rx) = wait {
                // Ends when the voice drops the sender: queued, failed, or interrupted.
                let _ = rx.recv_timeout(VOICE_FIRST_WAIT);
            }
        }
    }
}
