//! The sandboxed LLM: the guest component in Wasmtime, fed by the host's kernels.
//!
//! [`Llm`] owns one session: a store with the guest instance, its host tensors and KV cache.
//! A trap (a guest bug, its memory cap, or [`Canceller::interrupt`]) ends only that request: the
//! next one starts a fresh instance.

mod host;
mod sandbox;
mod tensors;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use host::exports::murmur::llm::llm::{Generation, Message, ModelInfo, Sampling, StopReason};
pub use sandbox::Sandbox;


/// What can go wrong running the LLM.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model file could not be opened.
    #[error("cannot open the model file {path}: {source}. Run `murmur models fetch` or pass --model PATH")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The requested backend is not available.
    #[error("{0}")]
    Backend(String),
    /// The guest refused the model or the request; its message says why.
    #[error("{0}")]
    Guest(String),
    /// The sandbox stopped the guest (memory cap, interruption, or a guest bug).
    #[error("the model runtime stopped: {0}")]
    Trap(String),
    /// The guest component could not be compiled or instantiated.
    #[error("cannot start the model runtime: {0}")]
    Runtime(String),
}

/// Which kernels run the guest's math.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// A hardware GPU when there is one, else the CPU.
    #[default]
    Auto,
    /// Native CPU kernels.
    Cpu,
    /// wgpu compute shaders.
    Gpu,
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The GGUF file.
    pub model: PathBuf,
    /// Kernel backend.
    pub backend: BackendChoice,
    /// Kernel threads.
    pub threads: usize,
    /// Context length in tokens (0: the model's, capped at 2048).
    pub context: u32,
    /// Prompt tokens per forward pass.
    pub batch: u32,
    /// Cap on the guest's linear memory, in bytes.
    pub guest_memory: usize,
    /// Cap on the session's host tensors (activations, KV cache), in bytes.
    pub host_memory: usize,
}

impl LlmConfig {
    /// Defaults for `model`: all cores, 512 MiB guest memory, 1 GiB of host tensors.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            backend: BackendChoice::Auto,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            context: 0,
            batch: 64,
            guest_memory: 512 << 20,
            host_memory: 1 << 30,
        }
    }
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.2,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
            max_tokens: 256,
            stop: Vec::new(),
            ignore_eos: false,
        }
    }
}

impl Sampling {
    /// Greedy decoding of up to `max_tokens`.
    pub fn greedy(max_tokens: u32) -> Self {
        Self { temperature: 0.0, repeat_penalty: 1.0, max_tokens, ..Self::default() }
    }
}

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
    model: Arc<memmap2::Mmap>,
    session: Option<sandbox::Session>,
    info: ModelInfo,
    canceller: Canceller,
}

impl Llm {
    /// Maps the model file and loads it into a fresh guest.
    pub fn load(config: LlmConfig) -> Result<Self, LlmError> {
        Self::load_in(Sandbox::shared()?, config)
    }

    /// Like [`Llm::load`], in a given sandbox.
    pub fn load_in(sandbox: Arc<Sandbox>, config: LlmConfig) -> Result<Self, LlmError> {
        if config.backend == BackendChoice::Gpu {
            return Err(LlmError::Backend(
                "the GPU backend is not part of this build yet; use --backend cpu (or auto)".into(),
            ));
        }
        let model = Arc::new(map_file(&config.model)?);
        let canceller = Canceller::default();
        let session = sandbox.start(&config, Arc::clone(&model), &canceller)?;
        let info = session.info.clone();
        tracing::info!(model = %config.model.display(), arch = %info.architecture, layers = info.layers, "model loaded");
        Ok(Self { sandbox, config, model, session: Some(session), info, canceller })
    }

    /// What is loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The backend that runs the kernels.
    pub fn backend_name(&self) -> &'static str {
        "cpu"
    }

    /// A handle that can stop the running request from another thread.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    fn session(&mut self) -> Result<&mut sandbox::Session, LlmError> {
        if self.session.is_none() {
            tracing::info!("starting a fresh model runtime");
            self.session = Some(self.sandbox.start(&self.config, Arc::clone(&self.model), &self.canceller)?);
        }
        Ok(self.session.as_mut().expect("just set"))
    }

    /// Token ids of `text` (special tokens parsed when `parse_special`).
    pub fn tokenize(&mut self, text: &str, parse_special: bool) -> Result<Vec<u32>, LlmError> {
        let result = self.session()?.tokenize(text, parse_special);
        self.settle(result)
    }

    /// Answers a conversation, streaming each token's text to `on_text` (return false to stop).
    pub fn chat(
        &mut self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: impl FnMut(&str) -> bool + Send + 'static,
    ) -> Result<(Generation, Timings), LlmError> {
        self.run(on_text, |s| s.chat(messages, sampling))
    }

    /// Continues a raw prompt (no chat template).
    pub fn complete(
        &mut self,
        prompt: &str,
        sampling: &Sampling,
        on_text: impl FnMut(&str) -> bool + Send + 'static,
    ) -> Result<(Generation, Timings), LlmError> {
        self.run(on_text, |s| s.complete(prompt, sampling))
    }

    fn run(
        &mut self,
        mut on_text: impl FnMut(&str) -> bool + Send + 'static,
        request: impl FnOnce(&mut sandbox::Session) -> Result<Generation, LlmError>,
    ) -> Result<(Generation, Timings), LlmError> {
        self.canceller.reset();
        let start = Instant::now();
        let marks = Arc::new(Mutex::new((None::<Instant>, None::<Instant>)));
        let (m, cancel) = (Arc::clone(&marks), Arc::clone(&self.canceller.cancel));
        let sink = Box::new(move |_id: u32, text: &str| {
            let now = Instant::now();
            let mut m = m.lock().expect("timing lock");
            m.0.get_or_insert(now);
            m.1 = Some(now);
            on_text(text) && !cancel.load(Ordering::SeqCst)
        });
        let session = self.session()?;
        session.set_sink(Some(sink));
        let result = request(session);
        if let Some(s) = self.session.as_mut() {
            s.set_sink(None);
        }
        let generation = self.settle(result)?;
        let (first, last) = *marks.lock().expect("timing lock");
        let total = start.elapsed();
        let first_token = first.map_or(total, |f| f - start);
        let decode_tps = match (first, last) {
            (Some(f), Some(l)) if generation.token_ids.len() > 1 && l > f => {
                (generation.token_ids.len() - 1) as f64 / (l - f).as_secs_f64()
            }
            _ => 0.0,
        };
        Ok((generation, Timings { first_token, total, decode_tps }))
    }

    /// Drops a session that trapped, so the next request starts fresh.
    fn settle<T>(&mut self, result: Result<T, LlmError>) -> Result<T, LlmError> {
        if let Err(LlmError::Trap(msg)) = &result {
            tracing::warn!(%msg, "the model runtime trapped; it will restart on the next request");
            self.session = None;
        }
        result
    }
}

fn map_file(path: &Path) -> Result<memmap2::Mmap, LlmError> {
    let open = |source| LlmError::Open { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(open)?;
    // SAFETY: the map is read-only; a file truncated underneath is the known mmap hazard,
    // handled by checking sizes at load (the guest validates every range).
    unsafe { memmap2::Mmap::map(&file) }.map_err(open)
}
