//! How a model is loaded and how its tokens are picked by default: each default defined once.

use std::path::PathBuf;
use std::time::Duration;

use super::Sampling;

/// Which kernels run the guest's math.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
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

impl BackendChoice {
    /// Every choice, in the order a list offers them.
    pub const ALL: [Self; 3] = [Self::Auto, Self::Cpu, Self::Gpu];

    /// Its name in settings and on the command line (`auto`, `cpu`, `gpu`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.map(Self::name).to_vec();
            format!("no backend is called {s:?}; the backends are {}", names.join(", "))
        })
    }
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
    /// Time each GPU kernel on its own (slower; see [`Llm::profile`]).
    pub profile: bool,
    /// Dispatches the GPU records before submitting them without waiting for the rest of the
    /// pass (0: each pass at once, at its read-back).
    pub gpu_turn: usize,
    /// How long the guest may run without getting anything done through the host (a kernel,
    /// a read, a token) before it is stopped as hung.
    pub stall_limit: Duration,
}

impl LlmConfig {
    /// Defaults for `model`: all cores, 512 MiB guest memory, 1 GiB of host tensors, 30 s
    /// stall limit.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            backend: BackendChoice::Auto,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            context: 0,
            batch: 64,
            guest_memory: 512 << 20,
            host_memory: 1 << 30,
            profile: false,
            gpu_turn: crate::compute::gpu::TURN,
            stall_limit: Duration::from_secs(30),
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
            json_schema: None,
        }
    }
}

impl Sampling {
    /// Greedy decoding of up to `max_tokens`.
    pub fn greedy(max_tokens: u32) -> Self {
        Self { temperature: 0.0, repeat_penalty: 1.0, max_tokens, ..Self::default() }
    }
}
