//! The sandboxed LLM: the guest component in Wasmtime, fed by the host's kernels.
//!
//! [`Llm`] owns one session: a store with the guest instance, its host tensors and KV cache.
//! A trap (a guest bug, its memory cap, or [`Canceller::interrupt`]) ends only that request: the
//! next one starts a fresh instance.

mod backends;
mod config;
mod engine;
mod error;
mod host;
mod model_file;
mod remote;
mod sandbox;
mod tensors;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use config::{BackendChoice, LlmConfig};
pub use engine::{Engine, EngineConfig};
pub use error::LlmError;
pub use host::exports::murmur::llm::llm::{Generation, Message, ModelInfo, RequestError, Sampling, StopReason};
pub use remote::{RemoteConfig, RemoteLlm};
pub use sandbox::Sandbox;

use crate::compute::{Backend, CpuWeights, KernelTime, Stats};
use model_file::open;

impl StopReason {
    /// The reason as a short kebab-case word (`end-of-generation`, `cancelled`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::EndOfGeneration => "end-of-generation",
            Self::StopString => "stop-string",
            Self::MaxTokens => "max-tokens",
            Self::Cancelled => "cancelled",
            Self::ContextFull => "context-full",
        }
    }
}

/// Host-side timings of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// From the call to the first generated token.
    pub first_token: Duration,
    /// From the call to the end.
    pub total: Duration,
    /// Tokens per second after the first token.
    pub decode_tps: f64,
}

/// Stops a running request from another thread.
#[derive(Clone, Default)]
pub struct Canceller {
    cancel: Arc<AtomicBool>,
    interrupt: Arc<AtomicBool>,
}

impl Canceller {
    /// Ends generation after the current token; the reply so far is kept.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Stops the guest at once through its epoch deadline (a trap); the next request starts a
    /// fresh instance. For a guest that does not respond to [`Canceller::cancel`].
    pub fn interrupt(&self) {
        self.interrupt.store(true, Ordering::SeqCst);
    }

    fn reset(&self) {
        self.cancel.store(false, Ordering::SeqCst);
        self.interrupt.store(false, Ordering::SeqCst);
    }
}

/// A loaded chat model in its sandbox.
pub struct Llm {
    sandbox: Arc<Sandbox>,
    config: LlmConfig,
    cpu_weights: Arc<CpuWeights>,
    session: Option<sandbox::GuestInstance>,
    info: ModelInfo,
    backend: (&'static str, String),
    canceller: Canceller,
    notices: Vec<String>,
}

/// What one request has streamed so far.
#[derive(Default)]
struct Progress {
    first: Option<Instant>,
    last: Option<Instant>,
    ids: Vec<u32>,
    text: String,
}

/// A request, in a form that can be resumed after a device loss.
enum Request<'a> {
    Chat(&'a [Message]),
    Complete(&'a str),
}

type TextSink = Arc<Mutex<Box<dyn FnMut(&str) -> bool + Send>>>;

impl Llm {
    /// Reads the model file and loads it into a fresh guest on the backend `config` asks for.
    pub fn load(config: LlmConfig) -> Result<Self, LlmError> {
        Self::load_in(Sandbox::shared()?, config)
    }

    /// Like [`Llm::load`], with the guest of `sandbox` (see [`Sandbox::with_guest`]).
    pub fn load_in(sandbox: Arc<Sandbox>, config: LlmConfig) -> Result<Self, LlmError> {
        let cpu_weights = open(&config.model)?;
        let backend = backends::open(&config, &cpu_weights)?;
        Self::start(sandbox, config, cpu_weights, backend)
    }

    /// Like [`Llm::load`], with the first session on a given backend, made from the model's CPU
    /// weights (a later restart opens the one `config` asks for).
    pub fn load_on(config: LlmConfig, backend: impl FnOnce(&Arc<CpuWeights>) -> Box<dyn Backend>) -> Result<Self, LlmError> {
        let cpu_weights = open(&config.model)?;
        let backend = backend(&cpu_weights);
        Self::start(Sandbox::shared()?, config, cpu_weights, backend)
    }

    fn start(
        sandbox: Arc<Sandbox>,
        config: LlmConfig,
        cpu_weights: Arc<CpuWeights>,
        backend: Box<dyn Backend>,
    ) -> Result<Self, LlmError> {
        let canceller = Canceller::default();
        let mut llm = Self {
            sandbox,
            config,
            cpu_weights,
            session: None,
            info: ModelInfo {
                architecture: String::new(),
                name: String::new(),
                context_length: 0,
                layers: 0,
                embedding: 0,
                heads: 0,
                kv_heads: 0,
                vocab_size: 0,
            },
            backend: ("", String::new()),
            canceller,
            notices: Vec::new(),
        };
        match llm.open_session(Some(backend)) {
            Ok(()) => {}
            Err(LlmError::DeviceLost(why)) => {
                llm.fall_back(&why);
                llm.open_session(None)?;
            }
            Err(e) => return Err(e),
        }
        // Every read checked the file as it went; this catches a writer that finished between
        // two of them.
        if !llm.cpu_weights.model().unchanged() {
            return Err(LlmError::Changed(llm.config.model.clone()));
        }
        let info = &llm.info;
        tracing::info!(
            model = %llm.config.model.display(), arch = %info.architecture, layers = info.layers,
            backend = %llm.backend.1, cpu_weight_bytes = llm.cpu_weights.bytes(), "model loaded"
        );
        Ok(llm)
    }

    /// Starts a guest on `backend`, or on the one the config asks for.
    fn open_session(&mut self, backend: Option<Box<dyn Backend>>) -> Result<(), LlmError> {
        let backend = match backend {
            Some(b) => b,
            None => backends::open(&self.config, &self.cpu_weights)?,
        };
        let session = self.sandbox.start(&self.config, Arc::clone(self.cpu_weights.model()), backend, &self.canceller)?;
        let (name, device, _) = session.backend();
        self.backend = (name, device);
        self.info = session.info.clone();
        self.session = Some(session);
        Ok(())
    }

    /// Moves to the CPU for good after the GPU failed, and tells the user.
    fn fall_back(&mut self, why: &str) {
        self.session = None;
        self.config.backend = BackendChoice::Cpu;
        let note = format!("{why}; Murmur goes on with the CPU");
        tracing::warn!("{note}");
        self.notices.push(note);
    }

    /// What is loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The backend that runs the kernels: `"cpu"` or `"gpu"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.0
    }

    /// The device the kernels run on, in words.
    pub fn device(&self) -> &str {
        &self.backend.1
    }

    /// The backend's work counters (dispatches, submits, device time) so far.
    pub fn stats(&self) -> Stats {
        self.session.as_ref().map_or_else(Stats::default, |s| s.backend().2)
    }

    /// Device time per kernel so far, slowest first (with [`LlmConfig::profile`] on the GPU).
    pub fn profile(&self) -> Vec<KernelTime> {
        self.session.as_ref().map_or_else(Vec::new, |s| s.profile())
    }

    /// Things the user should know that did not stop a request (such as a move to the CPU
    /// after the GPU failed), oldest first; each is returned once.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    /// A handle that can stop the running request from another thread.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    fn session(&mut self) -> Result<&mut sandbox::GuestInstance, LlmError> {
        if self.session.is_none() {
            tracing::info!("starting a fresh model runtime");
            self.open_session(None)?;
        }
        Ok(self.session.as_mut().expect("just set"))
    }

    /// Token ids of `text` (special tokens parsed when `parse_special`).
    pub fn tokenize(&mut self, text: &str, parse_special: bool) -> Result<Vec<u32>, LlmError> {
        loop {
            let result = self.session()?.tokenize(text, parse_special);
            match self.forget_broken_session(result) {
                Err(LlmError::DeviceLost(why)) if self.config.backend != BackendChoice::Cpu => self.fall_back(&why),
                other => return other,
            }
        }
    }

    /// Answers a conversation, streaming each token's text to `on_text` (return false to stop).
    ///
    /// A conversation whose last message is the assistant's continues that message.
    pub fn chat(
        &mut self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: impl FnMut(&str) -> bool + Send + 'static,
    ) -> Result<(Generation, Timings), LlmError> {
        self.run(Arc::new(Mutex::new(Box::new(on_text))), Request::Chat(messages), sampling)
    }

    /// Continues a raw prompt (no chat template).
    pub fn complete(
        &mut self,
        prompt: &str,
        sampling: &Sampling,
        on_text: impl FnMut(&str) -> bool + Send + 'static,
    ) -> Result<(Generation, Timings), LlmError> {
        self.run(Arc::new(Mutex::new(Box::new(on_text))), Request::Complete(prompt), sampling)
    }

    /// Runs a request. If the GPU fails midway, the reply goes on from where it stopped on the
    /// CPU: the streamed text becomes the start of the assistant's message (or of the prompt).
    fn run(&mut self, on_text: TextSink, request: Request<'_>, sampling: &Sampling) -> Result<(Generation, Timings), LlmError> {
        self.canceller.reset();
        let start = Instant::now();
        let progress = Arc::new(Mutex::new(Progress::default()));
        let generation = loop {
            let (prefix, done) = {
                let p = crate::sync::lock(&progress);
                (p.text.clone(), p.ids.len() as u32)
            };
            let resumed = Sampling { max_tokens: sampling.max_tokens.saturating_sub(done).max(1), ..sampling.clone() };
            let text_sink = sink(&progress, &on_text, &self.canceller.cancel);
            let session = self.session()?;
            session.set_sink(Some(text_sink));
            let result = match &request {
                Request::Chat(messages) if done > 0 => {
                    let mut m = messages.to_vec();
                    m.push(Message { role: "assistant".into(), content: prefix.clone() });
                    session.chat(&m, &resumed)
                }
                Request::Chat(messages) => session.chat(messages, &resumed),
                Request::Complete(prompt) => session.complete(&format!("{prompt}{prefix}"), &resumed),
            };
            if let Some(s) = self.session.as_mut() {
                s.set_sink(None);
            }
            match self.forget_broken_session(result) {
                Err(LlmError::DeviceLost(why)) if self.config.backend != BackendChoice::Cpu => self.fall_back(&why),
                Ok(mut g) if done > 0 => {
                    let p = crate::sync::lock(&progress);
                    g.text = format!("{prefix}{}", g.text);
                    g.token_ids = p.ids.clone();
                    break g;
                }
                other => break other?,
            }
        };
        let p = crate::sync::lock(&progress);
        let total = start.elapsed();
        let first_token = p.first.map_or(total, |f| f - start);
        let decode_tps = match (p.first, p.last) {
            (Some(f), Some(l)) if generation.token_ids.len() > 1 && l > f => {
                (generation.token_ids.len() - 1) as f64 / (l - f).as_secs_f64()
            }
            _ => 0.0,
        };
        Ok((generation, Timings { first_token, total, decode_tps }))
    }

    /// Drops a session that trapped or lost its device, so the next request starts fresh.
    fn forget_broken_session<T>(&mut self, result: Result<T, LlmError>) -> Result<T, LlmError> {
        match &result {
            Err(LlmError::Trap(msg)) => {
                tracing::warn!(%msg, "the model runtime trapped; it will restart on the next request");
                self.session = None;
            }
            Err(LlmError::DeviceLost(_)) => self.session = None,
            _ => {}
        }
        result
    }
}

/// The guest's token sink for one attempt: records progress, forwards text, and cancels when
/// the caller or the canceller says so.
fn sink(progress: &Arc<Mutex<Progress>>, on_text: &TextSink, cancel: &Arc<AtomicBool>) -> host::TokenSink {
    let (progress, on_text, cancel) = (Arc::clone(progress), Arc::clone(on_text), Arc::clone(cancel));
    Box::new(move |id: u32, text: &str| {
        let now = Instant::now();
        {
            let mut p = crate::sync::lock(&progress);
            p.first.get_or_insert(now);
            p.last = Some(now);
            p.ids.push(id);
            p.text.push_str(text);
        }
        let wanted = (crate::sync::lock(&on_text))(text);
        wanted && !cancel.load(Ordering::SeqCst)
    })
}
