//! Kernel backends behind the guest's `compute` interface.
//!
//! The host ([`crate::llm`]) checks every handle and shape the guest sends, then calls a
//! [`Backend`] with ids of tensors the backend owns: [`cpu::CpuBackend`] (native kernels over the
//! model's packed weights) or [`gpu::GpuBackend`] (WGSL compute shaders through wgpu). Both read
//! the weights from the [`ModelFile`].

pub mod cpu;
pub mod gpu;
pub mod model_file;
pub mod quant;
mod slab;

pub use cpu::kernels::{AttentionShape, WeightView};
pub use cpu::weights::CpuWeights;
pub use cpu::CpuBackend;
pub use gpu::GpuBackend;
pub use model_file::{ModelChanged, ModelFile};
pub use quant::WeightType;

/// A weight a backend holds: a range of the model file, in the backend's own layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeightId(pub usize);

/// An f32 activation tensor a backend holds (scratch, KV cache, logits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActId(pub usize);

/// Why a backend refused or failed an op. Shapes were checked by the caller.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// More memory than the backend may use.
    #[error("{0}")]
    Exhausted(String),
    /// A shape this backend cannot run.
    #[error("{0}")]
    Unsupported(String),
    /// The compute device stopped working (lost, reset, driver failure).
    #[error("the GPU stopped working: {0}")]
    DeviceLost(String),
    /// The model file changed on disk, so a weight could not be read from it.
    #[error(transparent)]
    ModelChanged(#[from] ModelChanged),
}

/// Where a weight lies in the model file: checked by the caller to lie inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeightSpec {
    /// Storage type.
    pub ty: WeightType,
    /// Rows (output features).
    pub rows: usize,
    /// Elements per row.
    pub cols: usize,
    /// Byte offset in the file.
    pub offset: usize,
}

impl WeightSpec {
    /// Bytes the weight takes in the file.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.rows * self.ty.row_bytes(self.cols).expect("checked by the caller")
    }
}

/// Rotary embedding parameters.
#[derive(Debug, Clone, Copy)]
pub struct RopeSpec {
    /// Width of one head.
    pub head_dim: usize,
    /// Position of the first row.
    pub pos: usize,
    /// Rows to rotate.
    pub n: usize,
    /// Frequency base.
    pub base: f32,
    /// Adjacent pairs (the GGUF llama layout) rather than halves (NeoX).
    pub interleaved: bool,
    /// A one-row F32 weight of `head_dim / 2` divisors of the pairs' angles (Llama 3's
    /// `rope_freqs`); none divides by one.
    pub factors: Option<WeightId>,
}

/// The nonlinearity of a gated feed-forward block: `out = act(gate) * up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `x * sigmoid(x)`.
    Silu,
    /// GELU's tanh approximation, `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`.
    GeluTanh,
}

impl Activation {
    /// The activation of one value.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Silu => x / (1.0 + (-x).exp()),
            Self::GeluTanh => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
            }
        }
    }
}

/// How an RMSNorm call runs: over groups of the weight's width within each row.
#[derive(Debug, Clone, Copy)]
pub struct NormSpec {
    /// Epsilon added to the mean square.
    pub eps: f32,
    /// Rows of `x` to normalise.
    pub rows: usize,
    /// Add to the output instead of overwriting it.
    pub accumulate: bool,
}

/// The tensors of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionIo {
    /// Queries, `n` rows of `heads * head_dim`.
    pub q: ActId,
    /// New keys, `n` rows of `kv_heads * head_dim`.
    pub k: ActId,
    /// New values, like the keys.
    pub v: ActId,
    /// Key cache, one row per position.
    pub k_cache: ActId,
    /// Value cache.
    pub v_cache: ActId,
    /// Output, like the queries.
    pub out: ActId,
}

/// Work counters since the backend was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Kernel launches (CPU: ops run).
    pub dispatches: u64,
    /// Command submissions to the device (CPU: 0).
    pub submits: u64,
    /// Device time spent in submitted work, in nanoseconds, where the device can time it.
    pub device_ns: u64,
    /// Host time turning recorded ops into command buffers and submitting them.
    pub encode_ns: u64,
    /// Host time blocked on the device, from a submit to its read-back.
    pub wait_ns: u64,
}

/// Device time spent in one kernel, from a profiling backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTime {
    /// The kernel (and its specialisation).
    pub name: String,
    /// Times it ran.
    pub dispatches: u64,
    /// Device nanoseconds, in total.
    pub ns: u64,
}

/// The most candidates [`Backend::top_k`] returns.
pub const MAX_TOP_K: usize = 256;

/// How much weight memory a holder may take, in multiples of the model file's size: a guest may
/// name weights of twice the file at once (views that a backend may copy); the CPU's packed
/// copies and the GPU's repacked uploads grow the smallest types (Q2_K's 2.6 bits a weight become
/// 10 and 12). Overlapping ranges named again and again must not grow memory without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightHolder {
    /// What the guest names at once.
    Guest,
    /// The CPU's packed copies.
    CpuPacked,
    /// The GPU's repacked uploads.
    GpuUploaded,
}

impl WeightHolder {
    /// Bytes this holder may take for a model file of `file_bytes` (plus 1 MiB of slack for
    /// tiny files).
    pub fn cap(self, file_bytes: u64) -> usize {
        let times = match self {
            Self::Guest => 2,
            Self::CpuPacked => 4,
            Self::GpuUploaded => 5,
        };
        times * file_bytes as usize + (1 << 20)
    }
}

/// Result of a backend op.
pub type BackendResult<T = ()> = Result<T, BackendError>;

/// Kernels over tensors the backend owns. Ops may run at once (CPU) or be recorded and run at
/// the next [`Backend::top_k`] (GPU); results are the same either way.
///
/// Callers guarantee what the host checks: ids exist, shapes fit, an output is not also an
/// input (except the in-place `add_bias`, `rope` and `penalize`), and `rows` never exceeds a tensor's rows.
pub trait Backend: Send {
    /// `"cpu"` or `"gpu"`.
    fn name(&self) -> &'static str;
    /// What the device is (`"AMD EPYC, 2 threads"`, `"NVIDIA H100 (Vulkan)"`).
    fn device(&self) -> String;
    /// Work done so far.
    fn stats(&self) -> Stats;
    /// Device time per kernel so far, slowest first, when the backend was opened to profile
    /// (each dispatch then runs in its own timed pass: slower, for finding where time goes).
    fn profile(&self) -> Vec<KernelTime> {
        Vec::new()
    }
    /// Takes a weight from the model file (the GPU uploads it once, here).
    fn weight(&mut self, spec: WeightSpec) -> BackendResult<WeightId>;
    /// A zero-filled `rows` x `cols` activation.
    fn activation(&mut self, rows: usize, cols: usize) -> BackendResult<ActId>;
    /// Frees an activation.
    fn free(&mut self, id: ActId);
    /// `out[i] = table[tokens[i]] * scale`.
    fn embed(&mut self, table: WeightId, tokens: &[u32], scale: f32, out: ActId) -> BackendResult;
    /// `out (+)= x / rms(x) * weight` for each `weight`-wide group of the first `spec.rows` rows.
    fn rms_norm(&mut self, x: ActId, weight: WeightId, spec: NormSpec, out: ActId) -> BackendResult;
    /// `out[t][r] (+)= dot(w[r], x[t])` for the first `rows` rows of `x`.
    fn matmul(&mut self, w: WeightId, x: ActId, rows: usize, out: ActId, accumulate: bool) -> BackendResult;
    /// `x[t] += bias` for the first `rows` rows, in place (`bias` is one row as wide as `x`).
    fn add_bias(&mut self, x: ActId, bias: WeightId, rows: usize) -> BackendResult;
    /// Rotary position embedding of `x`, in place.
    fn rope(&mut self, x: ActId, spec: RopeSpec) -> BackendResult;
    /// Stores the new keys/values at their positions, then causal grouped-query attention.
    fn attention(&mut self, io: AttentionIo, shape: AttentionShape) -> BackendResult;
    /// `out = act(gate) * up` for the first `rows` rows.
    fn glu(&mut self, gate: ActId, up: ActId, act: Activation, rows: usize, out: ActId) -> BackendResult;
    /// Copies row `src_row` of `src` to row `dst_row` of `dst`.
    fn copy_row(&mut self, src: ActId, src_row: usize, dst: ActId, dst_row: usize) -> BackendResult;
    /// Repetition penalty on row `row` of `logits` for each distinct listed token in range.
    fn penalize(&mut self, logits: ActId, row: usize, tokens: &[u32], penalty: f32) -> BackendResult;
    /// Row `row` of `logits` keeps the tokens whose bit is set in `allowed` (bit `i % 32` of word
    /// `i / 32`); every other logit, and those past the bitset's end, becomes -infinity.
    fn mask(&mut self, logits: ActId, row: usize, allowed: &[u32]) -> BackendResult;
    /// Runs what is pending and returns the whole tensor, row-major. For tests and diagnostics:
    /// the guest only ever reads [`Backend::top_k`].
    fn read(&mut self, x: ActId) -> BackendResult<Vec<f32>>;
    /// Runs what is pending and returns the `k` (at most [`MAX_TOP_K`]) largest values of row `row` as (index, value),
    /// best first, ties to the lower index.
    fn top_k(&mut self, logits: ActId, row: usize, k: usize) -> BackendResult<Vec<(u32, f32)>>;
}

/// The distinct tokens of `tokens` below `limit`, sorted.
pub(crate) fn distinct_below(tokens: &[u32], limit: usize, into: &mut Vec<u32>) {
    into.clear();
    into.extend(tokens.iter().filter(|&&t| (t as usize) < limit));
    into.sort_unstable();
    into.dedup();
}
