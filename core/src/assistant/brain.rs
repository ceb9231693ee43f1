//! The brain thread: speech to text, then the LLM, streaming the reply's tokens to the owner and
//! its sentences to the voice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::owner::{Msg, Progress};
use super::{voice, AssistantConfig, AssistantError, HISTORY_TURNS};
use crate::llm::{Engine, EngineConfig, Message, Sampling};
use crate::speech::Transcriber;
use crate::sync::lock;
use crate::tts::SentenceSplitter;

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
    /// Answer a request of the OpenAI server with the same model.
    Serve(crate::server::Job),
}

/// One turn for the brain.
pub(super) struct Job {
    pub turn: u64,
    pub question: Question,
    /// The audio epoch the reply is to be heard in.
    pub epoch: u64,
    /// Set when the turn is interrupted.
    pub cancel: Arc<AtomicBool>,
}

/// The models and the conversation so far.
pub(super) struct Brain {
    llm: Engine,
    speech: Option<Transcriber>,
    sampling: Sampling,
    system: Message,
    history: Vec<Message>,
    owner: Sender<Msg>,
    voice: Option<Sender<voice::Job>>,
}

impl Brain {
    /// Loads the models and primes the LLM's cache with the system prompt.
    pub fn load(config: &AssistantConfig, owner: Sender<Msg>, voice: Option<Sender<voice::Job>>) -> Result<Self, AssistantError> {
        let speech = match &config.speech_model {
            Some(path) => Some(Transcriber::load(path, config.speech)?),
            None => None,
        };
        let system = Message { role: "system".into(), content: config.system.clone() };
        let llm = match &config.remote {
            Some(remote) => Engine::start(EngineConfig::Remote(remote.clone()))?,
            None => {
                let mut llm = Engine::start(EngineConfig::Local(config.llm.clone()))?;
                // One token with only the system prompt: every later prompt starts with it and reuses it.
                llm.chat(std::slice::from_ref(&system), &Sampling::greedy(1), |_| false)?;
                llm
            }
        };
        Ok(Self { llm, speech, sampling: config.sampling.clone(), system, history: Vec::new(), owner, voice })
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
            }
        }
    }

    /// Readies speech recognition for the next turn while nobody waits for it.
    fn prepare_speech(&mut self) {
        if let Some(Err(e)) = self.speech.as_mut().map(Transcriber::prepare) {
            tracing::warn!("{e}");
        }
    }

    fn send(&self, turn: u64, p: Progress) {
        let _ = self.owner.send(Msg::Progress(turn, p));
    }

    fn turn(&mut self, job: Job) {
        if job.cancel.load(Ordering::SeqCst) {
            return;
        }
        let question = match job.question {
            Question::Text(text) => text,
            Question::Audio(audio) => {
                let heard = match &mut self.speech {
                    Some(t) => t.transcribe(&audio).map_err(|e| e.to_string()),
                    None => Err("speech recognition is off: no speech model was loaded (run `murmur models convert`)".into()),
                };
                let text = heard.as_ref().map(|t| t.text.clone()).ok();
                self.send(job.turn, Progress::Heard(heard, Instant::now()));
                match text {
                    Some(t) if !job.cancel.load(Ordering::SeqCst) => t,
                    _ => return self.prepare_speech(),
                }
            }
        };
        let user = Message { role: "user".into(), content: question };
        let messages: Vec<Message> =
            std::iter::once(&self.system).chain(&self.history).chain(std::iter::once(&user)).cloned().collect();
        let stream = Arc::new(Mutex::new(ReplyStream {
            turn: job.turn,
            epoch: job.epoch,
            splitter: SentenceSplitter::new(),
            owner: self.owner.clone(),
            voice: self.voice.clone(),
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
    splitter: SentenceSplitter,
    owner: Sender<Msg>,
    voice: Option<Sender<voice::Job>>,
}

impl ReplyStream {
    fn text(&mut self, text: &str) {
        let now = Instant::now();
        let _ = self.owner.send(Msg::Progress(self.turn, Progress::Token(text.to_string(), now)));
        let sentences = self.splitter.push(text);
        self.sentences(sentences, now);
    }

    fn finish(&mut self) {
        let sentences = self.splitter.finish();
        self.sentences(sentences, Instant::now());
    }

    fn sentences(&self, sentences: Vec<String>, now: Instant) {
        for s in sentences {
            if let Some(v) = &self.voice {
                let _ = v.send(voice::Job::Speak { turn: self.turn, epoch: self.epoch, text: s.clone() });
            }
            let _ = self.owner.send(Msg::Progress(self.turn, Progress::Sentence(s, now)));
        }
    }
}
