//! [`Backend`] on WGSL compute shaders through wgpu.
//!
//! Weights are repacked and uploaded once ([`weights`]); activations, the KV cache and scratch
//! live on the device. Ops are recorded, not run: a forward pass becomes one compute pass and
//! one submit at the next [`Backend::top_k`], which reads back only `k` candidates.
//!
//! - [`ops`]: one file per op, owning its shader, parameters, bindings and dispatch;
//! - [`fusion`]: which recorded ops merge into one mat-mul dispatch;
//! - [`kernels`]: the pipelines, built once;
//! - `bindings`: bind groups (made once per tensor combination, then reused for every token)
//!   and dispatch;
//! - `recorder`: the pass, its parameter slots and the submit;
//! - [`weights`]: the repacked layouts and their upload.

mod bindings;
pub mod device;
mod fusion;
pub mod kernels;
pub mod ops;
mod recorder;
pub mod weights;

use std::collections::HashMap;
use std::sync::Arc;

use super::model_file::ModelFile;
use super::slab::Slab;
use bindings::{BindKey, Buf, Scratch};
pub use device::AdapterPolicy;
use device::Gpu;
use fusion::{Pending, WeightShape};
use kernels::Kernels;
use ops::{attention, bias, copy_row, embed, glu, matmul, norm, rope, sampling};
use recorder::Recorder;
pub use recorder::TURN;

use super::{
    ActId, Activation, AttentionIo, AttentionShape, Backend, BackendError, BackendResult, KernelTime, NormSpec, RopeSpec, Stats,
    WeightId, WeightSpec,
};

/// Rows `row0..row0 + rows` of a weight, bound on their own.
struct Part {
    row0: usize,
    rows: usize,
    q: Buf,
    s: Buf,
}

struct GpuWeight {
    bits: u32,
    cols: usize,
    parts: Vec<Part>,
}

struct GpuAct {
    cols: usize,
    len: usize,
    buf: Buf,
}

/// How to open the GPU backend.
#[derive(Debug, Clone, Copy)]
pub struct GpuOptions {
    /// Which adapters may serve.
    pub policy: AdapterPolicy,
    /// A binding size below the device's own, to exercise weight splitting.
    pub max_binding: Option<u64>,
    /// Time every dispatch on its own (see [`Backend::profile`]).
    pub profile: bool,
    /// Dispatches recorded before they are submitted without waiting (0: a forward pass goes
    /// to the device whole, at its read-back).
    pub turn: usize,
}

impl GpuOptions {
    /// Adapters that `policy` allows, the device's own binding limit, untimed, in turns of
    /// [`TURN`] dispatches.
    pub fn new(policy: AdapterPolicy) -> Self {
        Self { policy, max_binding: None, profile: false, turn: TURN }
    }
}

/// The GPU backend.
pub struct GpuBackend {
    gpu: Gpu,
    kernels: Kernels,
    model: Arc<ModelFile>,
    max_binding: u64,
    weights: Vec<GpuWeight>,
    weight_ids: HashMap<WeightSpec, WeightId>,
    weight_bytes: u64,
    acts: Slab<GpuAct>,
    binds: HashMap<BindKey, wgpu::BindGroup>,
    rec: Recorder,
    top_k: Option<Scratch>,
    spans: Option<Scratch>,
    /// Outputs for the unused slots of a mat-mul dispatch.
    dummies: Vec<Buf>,
    pending: Option<Pending>,
    next_uid: u64,
    stats: Stats,
}

impl GpuBackend {
    /// Opens the best adapter `options.policy` allows over `model`, or says why there is none.
    pub fn new(model: Arc<ModelFile>, options: GpuOptions) -> Result<Self, String> {
        let adapter = device::find_adapter(options.policy).ok_or_else(|| match options.policy {
            AdapterPolicy::Hardware => "no hardware GPU was found".to_string(),
            AdapterPolicy::Any => {
                "no GPU adapter was found (Vulkan, Metal or DX12; on Linux install a Vulkan driver such as mesa-vulkan-drivers)"
                    .to_string()
            }
        })?;
        let gpu = Gpu::open(&adapter)?;
        let storage = gpu.limits.max_storage_buffers_per_shader_stage;
        if storage < matmul::BINDINGS {
            return Err(format!(
                "{} binds {storage} storage buffers per shader; Murmur's kernels need {}",
                gpu.description,
                matmul::BINDINGS
            ));
        }
        let kernels = Kernels::new(&gpu.device);
        let device_max = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
        let max_binding = options.max_binding.map_or(device_max, |m| m.min(device_max));
        let align = gpu.limits.min_uniform_buffer_offset_alignment as u64;
        let rec = Recorder::new(&gpu, align, options.profile, options.turn);
        tracing::info!(device = %gpu.description, max_binding, "GPU backend");
        let mut backend = Self {
            kernels,
            model,
            max_binding,
            weights: Vec::new(),
            weight_ids: HashMap::new(),
            weight_bytes: 0,
            acts: Slab::new(),
            binds: HashMap::new(),
            rec,
            top_k: None,
            spans: None,
            dummies: Vec::new(),
            pending: None,
            next_uid: 0,
            stats: Stats::default(),
            gpu,
        };
        let usage = wgpu::BufferUsages::STORAGE;
        backend.dummies = (0..3).map(|_| backend.buffer(16, usage)).collect();
        Ok(backend)
    }

    /// Destroys the device as a driver reset would (fault injection for tests): every later op
    /// fails with [`BackendError::DeviceLost`].
    pub fn lose_device(&self) {
        self.gpu.destroy();
    }

    fn buffer(&mut self, size: u64, usage: wgpu::BufferUsages) -> Buf {
        self.next_uid += 1;
        // Whole 16-byte units: kernels read activations four floats at a time.
        let size = size.max(16).next_multiple_of(16);
        let buf = self.gpu.device.create_buffer(&wgpu::BufferDescriptor { label: None, size, usage, mapped_at_creation: false });
        Buf { buf, uid: self.next_uid }
    }

    fn check(&self) -> BackendResult {
        match self.gpu.failure() {
            Some(f) => Err(BackendError::DeviceLost(f)),
            None => Ok(()),
        }
    }

    fn act(&self, id: ActId) -> &GpuAct {
        self.acts.get(id)
    }

    fn weight_shape(&self, w: WeightId) -> WeightShape {
        let w = &self.weights[w.0];
        WeightShape { bits: w.bits, cols: w.cols, whole: w.parts.len() == 1 }
    }

    /// Records the op held back for fusion, if any.
    fn record_pending(&mut self) -> BackendResult {
        match self.pending.take() {
            None => Ok(()),
            Some(Pending::Norm { x, weight, spec, out, .. }) => norm::record(self, x, weight, spec, out),
            Some(Pending::Glu { gate, up, act, rows, out }) => glu::record(self, gate, up, act, rows, out),
            Some(Pending::Matmul(m)) => matmul::record(self, m),
            Some(Pending::Rope { x, y, spec }) => rope::record(self, x, y, spec),
        }
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn device(&self) -> String {
        self.gpu.description.clone()
    }

    fn stats(&self) -> Stats {
        Stats { dispatches: self.stats.dispatches + self.rec.len() as u64, ..self.stats }
    }

    fn profile(&self) -> Vec<KernelTime> {
        self.rec.profile()
    }

    fn weight(&mut self, spec: WeightSpec) -> BackendResult<WeightId> {
        self.check()?;
        if let Some(&id) = self.weight_ids.get(&spec) {
            return Ok(id);
        }
        let w = self.upload_weight(spec)?;
        self.weights.push(w);
        let id = WeightId(self.weights.len() - 1);
        self.weight_ids.insert(spec, id);
        Ok(id)
    }

    fn activation(&mut self, rows: usize, cols: usize) -> BackendResult<ActId> {
        self.check()?;
        let bytes = (rows * cols * 4) as u64;
        if bytes.next_multiple_of(16) > self.max_binding {
            return Err(BackendError::Exhausted(format!(
                "a {rows}x{cols} activation ({bytes} bytes) is larger than the GPU can bind ({} bytes)",
                self.max_binding
            )));
        }
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let buf = self.buffer(bytes, usage);
        Ok(self.acts.insert(GpuAct { cols, len: rows * cols, buf }))
    }

    fn free(&mut self, id: ActId) {
        // The held-back op may name it; a failure here shows again at the next op.
        let _ = self.record_pending();
        if let Some(act) = self.acts.remove(id) {
            // Recorded work may still use it: the buffer lives on in the recorded bind groups
            // until they are submitted.
            self.forget(&[act.buf.uid]);
        }
    }

    fn embed(&mut self, table: WeightId, tokens: &[u32], scale: f32, out: ActId) -> BackendResult {
        embed::record(self, table, tokens, scale, out)
    }

    fn rms_norm(&mut self, x: ActId, weight: WeightId, spec: NormSpec, out: ActId) -> BackendResult {
        norm::hold(self, x, weight, spec, out)
    }

    fn matmul(&mut self, w: WeightId, x: ActId, rows: usize, out: ActId, accumulate: bool) -> BackendResult {
        matmul::hold(self, w, x, rows, out, accumulate)
    }

    fn rope(&mut self, x: ActId, spec: RopeSpec) -> BackendResult {
        rope::hold(self, x, spec)
    }

    fn attention(&mut self, io: AttentionIo, a: AttentionShape) -> BackendResult {
        attention::record(self, io, a)
    }

    fn glu(&mut self, gate: ActId, up: ActId, act: Activation, rows: usize, out: ActId) -> BackendResult {
        glu::hold(self, gate, up, act, rows, out)
    }

    fn add_bias(&mut self, x: ActId, bias: WeightId, rows: usize) -> BackendResult {
        bias::record(self, x, bias, rows)
    }

    fn copy_row(&mut self, src: ActId, src_row: usize, dst: ActId, dst_row: usize) -> BackendResult {
        copy_row::record(self, src, src_row, dst, dst_row)
    }

    fn penalize(&mut self, logits: ActId, row: usize, tokens: &[u32], penalty: f32) -> BackendResult {
        sampling::penalize(self, logits, row, tokens, penalty)
    }

    fn mask(&mut self, logits: ActId, row: usize, allowed: &[u32]) -> BackendResult {
        sampling::mask(self, logits, row, allowed)
    }

    fn read(&mut self, x: ActId) -> BackendResult<Vec<f32>> {
        let (buf, len) = (self.act(x).buf.buf.clone(), self.act(x).len);
        let bytes = self.flush(Some((&buf, len as u64 * 4)))?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }

    fn top_k(&mut self, logits: ActId, row: usize, k: usize) -> BackendResult<Vec<(u32, f32)>> {
        sampling::top_k(self, logits, row, k)
    }
}
