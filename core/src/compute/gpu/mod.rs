//! [`Backend`] on WGSL compute shaders through wgpu.
//!
//! Weights are repacked and uploaded once ([`weights`]); activations, the KV cache and scratch
//! live on the device. Ops are recorded, not run: a forward pass becomes one compute pass and
//! one submit at the next [`Backend::top_k`], which reads back only `k` candidates. Pipelines
//! are built once ([`kernels`]) and bind groups once per tensor combination, then reused for
//! every token.

pub mod device;
mod fusion;
pub mod kernels;
mod recorder;
pub mod weights;

use std::collections::HashMap;
use std::sync::Arc;

use super::model_file::ModelFile;
use super::slab::Slab;
pub use device::AdapterPolicy;
use device::Gpu;
use fusion::{fuse_matmul, fuse_rope, Aux, FusedMatmul, Pending, WeightShape};
use kernels::{format_index, Kernel, Kernels, Layout, MatmulVariant, MATMUL_BINDINGS, MATMUL_TILE};
use recorder::{Params, Recorder};

use super::{
    ActId, Activation, AttentionIo, AttentionShape, Backend, BackendError, BackendResult, KernelTime, NormSpec, RopeSpec, Stats,
    WeightHolder, WeightId, WeightSpec,
};

/// A device buffer with an id that names it in the bind-group cache.
pub(crate) struct Buf {
    buf: wgpu::Buffer,
    uid: u64,
}

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

/// Bind groups are cached by kernel layout and the buffers bound.
type BindKey = (Layout, Vec<u64>);

/// Device scratch that grows to the largest size asked for: top-k's candidates (two, ping-ponged
/// between rounds) and attention's per-span partial sums.
struct Scratch {
    bufs: Vec<Buf>,
    bytes: u64,
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

/// Workgroups per grid dimension that every device allows.
const MAX_GROUPS: u32 = 65_535;

/// `groups` workgroups as an (x, y) grid; shaders rebuild the index as `x + y * nx`.
fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1) as u32;
    if groups <= MAX_GROUPS {
        (groups, 1)
    } else {
        (MAX_GROUPS, groups.div_ceil(MAX_GROUPS))
    }
}

fn lost(e: impl std::fmt::Display) -> BackendError {
    BackendError::DeviceLost(e.to_string())
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
        if storage < MATMUL_BINDINGS {
            return Err(format!(
                "{} binds {storage} storage buffers per shader; Murmur's kernels need {MATMUL_BINDINGS}",
                gpu.description
            ));
        }
        let kernels = Kernels::new(&gpu.device);
        let device_max = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
        let max_binding = options.max_binding.map_or(device_max, |m| m.min(device_max));
        let align = gpu.limits.min_uniform_buffer_offset_alignment as u64;
        let rec = Recorder::new(&gpu, align, options.profile);
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

    /// The cached bind group of `layout` over `bufs` (binding 1 onwards), made on first use.
    fn bind(&mut self, layout: Layout, bufs: &[&Buf]) -> wgpu::BindGroup {
        let key = (layout, bufs.iter().map(|b| b.uid).collect());
        if let Some(g) = self.binds.get(&key) {
            return g.clone();
        }
        let params = wgpu::BufferBinding {
            buffer: &self.rec.params.buf,
            offset: 0,
            size: std::num::NonZeroU64::new(kernels::PARAMS_BYTES),
        };
        let entries: Vec<_> =
            std::iter::once(wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::Buffer(params) })
                .chain(
                    bufs.iter()
                        .enumerate()
                        .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.buf.as_entire_binding() }),
                )
                .collect();
        let group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: self.kernels.layout(layout),
            entries: &entries,
        });
        self.binds.insert(key, group.clone());
        group
    }

    /// Stores token ids for the next `dispatches` dispatches (submitting what is recorded first
    /// if they do not fit).
    fn ids(&mut self, ids: &[u32], dispatches: usize) -> BackendResult<usize> {
        if ids.len() > recorder::MAX_IDS {
            return Err(BackendError::Exhausted(format!(
                "{} token ids in one op; the GPU backend takes {}",
                ids.len(),
                recorder::MAX_IDS
            )));
        }
        if self.rec.full(dispatches, ids.len()) {
            self.flush(None)?;
        }
        Ok(self.rec.push_ids(ids))
    }

    /// Records one dispatch of `kernel` over `bufs` with `params`.
    fn dispatch(&mut self, kernel: &Kernel, bufs: &[&Buf], params: Params, groups: (u32, u32, u32)) -> BackendResult {
        self.check()?;
        if self.rec.full(1, 0) {
            self.flush(None)?;
        }
        let group = self.bind(kernel.layout, bufs);
        self.rec.record(kernel, group, params, groups);
        Ok(())
    }

    /// Submits what is recorded; with `read`, copies those bytes back after it and returns them.
    fn flush(&mut self, read: Option<(&wgpu::Buffer, u64)>) -> BackendResult<Vec<u8>> {
        self.check()?;
        self.record_pending()?;
        let dispatches = self.rec.len() as u64;
        let submitted = self.rec.submit(&self.gpu, read);
        // A lost device says why better than the failed read-back does.
        self.check()?;
        let s = submitted.map_err(lost)?;
        self.stats.dispatches += dispatches;
        self.stats.submits += 1;
        self.stats.device_ns += s.device_ns;
        self.stats.encode_ns += s.encode_ns;
        self.stats.wait_ns += s.wait_ns;
        self.check()?;
        Ok(s.bytes)
    }

    fn upload_weight(&mut self, spec: WeightSpec) -> BackendResult<GpuWeight> {
        let bits = weights::bits_of(&spec);
        let (qrow, srow) = weights::row_bytes(bits, spec.cols);
        let part_rows = (self.max_binding as usize / qrow.max(srow).max(1)).min(spec.rows);
        if part_rows == 0 {
            return Err(BackendError::Exhausted(format!(
                "one row of a {}x{} weight is larger than the GPU can bind ({} bytes)",
                spec.rows, spec.cols, self.max_binding
            )));
        }
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let row_bytes = spec.ty.row_bytes(spec.cols).expect("checked by the host");
        let mut parts = Vec::new();
        for row0 in (0..spec.rows).step_by(part_rows) {
            let rows = part_rows.min(spec.rows - row0);
            let file = self.model.read((spec.offset + row0 * row_bytes) as u64, rows * row_bytes)?;
            let (mut qd, mut sd) = (vec![0u8; rows * qrow], vec![0u8; rows * srow]);
            for r in 0..rows {
                let (q, s) = (&mut qd[r * qrow..(r + 1) * qrow], &mut sd[r * srow..(r + 1) * srow]);
                weights::repack_row(&spec, bits, &file, r, q, s);
            }
            let (q, s) = (self.buffer(qd.len() as u64, usage), self.buffer(sd.len() as u64, usage));
            self.gpu.queue.write_buffer(&q.buf, 0, &qd);
            self.gpu.queue.write_buffer(&s.buf, 0, &sd);
            parts.push(Part { row0, rows, q, s });
        }
        self.check()?;
        Ok(GpuWeight { bits, cols: spec.cols, parts })
    }

    /// Makes `slot` hold `count` buffers of at least `bytes` each.
    fn scratch(&mut self, slot: fn(&mut Self) -> &mut Option<Scratch>, count: usize, bytes: u64) {
        if slot(self).as_ref().is_none_or(|s| s.bytes < bytes) {
            let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
            let bufs = (0..count).map(|_| self.buffer(bytes, usage)).collect();
            if let Some(old) = slot(self).replace(Scratch { bufs, bytes }) {
                self.forget(&old.bufs.iter().map(|b| b.uid).collect::<Vec<_>>());
            }
        }
    }

    fn weight_shape(&self, w: WeightId) -> WeightShape {
        let w = &self.weights[w.0];
        WeightShape { bits: w.bits, cols: w.cols, whole: w.parts.len() == 1 }
    }

    /// Records the op held back for fusion, if any.
    fn record_pending(&mut self) -> BackendResult {
        match self.pending.take() {
            None => Ok(()),
            Some(Pending::Norm { x, weight, spec, out, .. }) => {
                let (cols, group) = (self.act(x).cols, self.weights[weight.0].cols);
                let kernel = self.kernels.rms_norm.clone();
                let bufs = self.resolve(&[Resource::Act(x), Resource::Weight(weight, 0), Resource::Act(out)]);
                let params = Params::new().u(group).f(spec.eps).u(spec.accumulate as usize);
                self.dispatch_with(&kernel, &bufs, params, ((spec.rows * cols / group) as u32, 1, 1))
            }
            Some(Pending::Glu { gate, up, act, rows, out }) => {
                let count = rows * self.act(gate).cols;
                let (nx, ny) = grid(count.div_ceil(256));
                let kernel = self.kernels.glu.clone();
                let bufs = self.resolve(&[Resource::Act(gate), Resource::Act(up), Resource::Act(out)]);
                let params = Params::new().u(count).u(nx as usize).u((act == Activation::GeluTanh) as usize);
                self.dispatch_with(&kernel, &bufs, params, (nx, ny, 1))
            }
            Some(Pending::Matmul(m)) => self.record_matmul(m),
            Some(Pending::Rope { x, y, spec: s }) => {
                let cols = self.act(x).cols;
                let cols_y = y.map_or(0, |y| self.act(y).cols);
                let (nx, ny) = grid((s.n * (cols + cols_y) / 2).div_ceil(64));
                let params = Params::new()
                    .u(cols)
                    .u(cols_y)
                    .u(s.head_dim)
                    .u(s.pos)
                    .u(s.n)
                    .f(s.base)
                    .u(s.interleaved as usize)
                    .u(nx as usize)
                    .u(s.factors.is_some() as usize);
                let kernel = self.kernels.rope.clone();
                let factors = s.factors.map_or(Resource::Dummy(1), |f| Resource::Weight(f, 0));
                let bufs = self.resolve(&[Resource::Act(x), y.map_or(Resource::Dummy(0), Resource::Act), factors]);
                self.dispatch_with(&kernel, &bufs, params, (nx, ny, 1))
            }
        }
    }

    /// Records up to three mat-muls sharing an input as one dispatch per part of the weight.
    fn record_matmul(&mut self, m: FusedMatmul) -> BackendResult {
        let (w0, out0) = m.targets[0];
        let WeightShape { bits, cols, .. } = self.weight_shape(w0);
        let tile = if m.rows == 1 { 1 } else { MATMUL_TILE };
        let heights: Vec<usize> = m.targets.iter().map(|&(w, _)| self.weights[w.0].parts[0].rows).collect();
        // Four rows to a workgroup where that still leaves enough workgroups to fill a large GPU
        // (measured on an H200: the output matrix and prefill gain, q/k/v and down lose).
        // A rotation pairs adjacent rows, which must share a workgroup.
        let lanes = if tile > 1 || heights.iter().sum::<usize>() >= 2048 {
            16
        } else if m.rope.is_some() {
            32
        } else {
            64
        };
        let (rope, rope_mask) =
            m.rope.map_or((RopeSpec { head_dim: 2, pos: 0, n: 0, base: 1.0, interleaved: true, factors: None }, 0), |r| r);
        let variant = MatmulVariant { bits, tile, input: m.input, count: m.targets.len() as u32, lanes, cols: cols as u32 };
        let kernel = self.kernels.matmul(variant);
        let out_cols = self.act(out0).cols;
        let aux = match m.aux {
            Some(Aux::Weight(w)) => Resource::Weight(w, 0),
            Some(Aux::Act(a)) => Resource::Act(a),
            None => Resource::Act(m.x),
        };
        for part in 0..self.weights[w0.0].parts.len() {
            let p = &self.weights[w0.0].parts[part];
            let (row0, rows) = (p.row0, p.rows);
            let height = |k: usize| {
                if k == 0 {
                    rows
                } else {
                    heights.get(k).copied().unwrap_or(0)
                }
            };
            let (nx, ny) = grid((height(0) + height(1) + height(2)).div_ceil(64 / lanes as usize));
            let params = Params::new()
                .u(height(0))
                .u(height(1))
                .u(height(2))
                .u(m.rows)
                .u(m.accumulate as usize)
                .u(row0)
                .u(out_cols)
                .u(nx as usize)
                .f(m.eps)
                .u(rope_mask as usize)
                .u(rope.head_dim)
                .u(rope.pos)
                .f(rope.base);
            let weight = |k: usize| m.targets.get(k).map_or((w0, part), |&(w, _)| (w, if k == 0 { part } else { 0 }));
            let out = |k: usize| m.targets.get(k).map_or(Resource::Dummy(k), |&(_, o)| Resource::Act(o));
            let bufs = self.resolve(&[
                Resource::Weight(weight(0).0, weight(0).1),
                Resource::WeightScales(weight(0).0, weight(0).1),
                Resource::Weight(weight(1).0, weight(1).1),
                Resource::WeightScales(weight(1).0, weight(1).1),
                Resource::Weight(weight(2).0, weight(2).1),
                Resource::WeightScales(weight(2).0, weight(2).1),
                Resource::Act(m.x),
                aux,
                out(0),
                out(1),
                out(2),
                m.side.map_or(Resource::Dummy(0), Resource::Act),
            ]);
            self.dispatch_with(&kernel, &bufs, params, (nx, ny, (m.rows as u32).div_ceil(tile)))?;
        }
        Ok(())
    }

    /// Drops cached bind groups that use any of `uids`.
    fn forget(&mut self, uids: &[u64]) {
        self.binds.retain(|(_, bound), _| !bound.iter().any(|u| uids.contains(u)));
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
        let bits = weights::bits_of(&spec);
        let (q, s) = weights::row_bytes(bits, spec.cols);
        let bytes = (spec.rows * (q + s)) as u64;
        let budget = WeightHolder::GpuUploaded.cap(self.model.len()) as u64;
        if self.weight_bytes + bytes > budget {
            return Err(BackendError::Exhausted(format!(
                "uploading a {}x{} weight would take GPU weights past {budget} bytes",
                spec.rows, spec.cols
            )));
        }
        let w = self.upload_weight(spec)?;
        self.weight_bytes += bytes;
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
        self.record_pending()?;
        let at = self.ids(tokens, self.weights[table.0].parts.len())?;
        let w = &self.weights[table.0];
        let kernel = self.kernels.embed[format_index(w.bits)].clone();
        let cols = w.cols;
        for i in 0..w.parts.len() {
            let w = &self.weights[table.0];
            let part = &w.parts[i];
            if !tokens.iter().any(|&t| (part.row0..part.row0 + part.rows).contains(&(t as usize))) {
                continue;
            }
            let params = Params::new().u(cols).u(tokens.len()).u(at).u(part.row0).u(part.rows).f(scale);
            let groups = ((cols as u32).div_ceil(64), tokens.len() as u32, 1);
            let bufs =
                self.resolve(&[Resource::Weight(table, i), Resource::WeightScales(table, i), Resource::Ids, Resource::Act(out)]);
            self.dispatch_with(&kernel, &bufs, params, groups)?;
        }
        Ok(())
    }

    fn rms_norm(&mut self, x: ActId, weight: WeightId, spec: NormSpec, out: ActId) -> BackendResult {
        self.check()?;
        self.record_pending()?;
        let whole_rows = self.weights[weight.0].cols == self.act(x).cols;
        self.pending = Some(Pending::Norm { x, weight, spec, whole_rows, out });
        Ok(())
    }

    fn matmul(&mut self, w: WeightId, x: ActId, rows: usize, out: ActId, accumulate: bool) -> BackendResult {
        self.check()?;
        let shape = self.weight_shape(w);
        if let Some(pending) = &self.pending {
            let first = match pending {
                Pending::Matmul(m) => Some(self.weight_shape(m.targets[0].0)),
                _ => None,
            };
            if let Some(fused) = fuse_matmul(pending, first, shape, (w, x, rows, out, accumulate)) {
                self.pending = Some(Pending::Matmul(fused));
                return Ok(());
            }
        }
        self.record_pending()?;
        self.pending = Some(Pending::Matmul(FusedMatmul::plain(w, x, rows, out, accumulate)));
        Ok(())
    }

    fn rope(&mut self, x: ActId, spec: RopeSpec) -> BackendResult {
        self.check()?;
        // Rotated pairs of rows must not straddle the parts of a split weight.
        let whole = match &self.pending {
            Some(Pending::Matmul(m)) => m.targets.iter().all(|&(w, _)| self.weight_shape(w).whole),
            _ => true,
        };
        if let Some(fused) = self.pending.as_ref().filter(|_| whole).and_then(|p| fuse_rope(p, x, spec)) {
            self.pending = Some(fused);
            return Ok(());
        }
        self.record_pending()?;
        self.pending = Some(Pending::Rope { x, y: None, spec });
        Ok(())
    }

    fn attention(&mut self, io: AttentionIo, a: AttentionShape) -> BackendResult {
        self.record_pending()?;
        if a.head_dim % 4 != 0 {
            return Err(BackendError::Unsupported(format!(
                "attention heads {} wide (the GPU needs a multiple of 4)",
                a.head_dim
            )));
        }
        // Positions per workgroup: short spans spread one token over many workgroups (on an
        // H200, 32 beat 64 and 128 with the merge counted).
        const CHUNK: usize = 32;
        let scale = 1.0 / (a.head_dim as f32).sqrt();
        let len = a.pos + a.n;
        // Spans of 32 positions, fewer and longer when their partial sums would not fit.
        let per_span = a.n * a.heads * (a.head_dim + 2) * 4;
        let most = (self.max_binding as usize / per_span).clamp(1, 1024);
        let span = len.div_ceil(CHUNK).div_ceil(most) * CHUNK;
        let spans = len.div_ceil(span);
        self.scratch(|s| &mut s.spans, 1, if spans > 1 { (spans * per_span) as u64 } else { 16 });
        let params = Params::new()
            .u(a.heads)
            .u(a.kv_heads)
            .u(a.head_dim)
            .u(a.pos)
            .u(a.n)
            .f(scale)
            .u(span)
            .u(spans)
            .u(a.window.unwrap_or(0));
        let bufs = self.resolve(&[
            Resource::Act(io.q),
            Resource::Act(io.k),
            Resource::Act(io.v),
            Resource::Act(io.k_cache),
            Resource::Act(io.v_cache),
            Resource::Act(io.out),
            Resource::Spans,
        ]);
        let (attend, combine) = self.kernels.attention(a.head_dim);
        let (heads, n) = (a.heads as u32, a.n as u32);
        self.dispatch_with(&attend, &bufs, params, (heads, n, spans as u32))?;
        if spans > 1 {
            self.dispatch_with(&combine, &bufs, params, (heads, n, 1))?;
        }
        Ok(())
    }

    fn glu(&mut self, gate: ActId, up: ActId, act: Activation, rows: usize, out: ActId) -> BackendResult {
        self.check()?;
        self.record_pending()?;
        self.pending = Some(Pending::Glu { gate, up, act, rows, out });
        Ok(())
    }

    fn add_bias(&mut self, x: ActId, bias: WeightId, rows: usize) -> BackendResult {
        self.check()?;
        self.record_pending()?;
        let cols = self.act(x).cols;
        let count = rows * cols;
        let (nx, ny) = grid(count.div_ceil(256));
        let kernel = self.kernels.add_bias.clone();
        let bufs = self.resolve(&[Resource::Weight(bias, 0), Resource::Act(x)]);
        self.dispatch_with(&kernel, &bufs, Params::new().u(cols).u(count).u(nx as usize), (nx, ny, 1))
    }

    fn copy_row(&mut self, src: ActId, src_row: usize, dst: ActId, dst_row: usize) -> BackendResult {
        self.record_pending()?;
        let cols = self.act(src).cols;
        let kernel = self.kernels.copy_row.clone();
        let params = Params::new().u(cols).u(src_row * cols).u(dst_row * cols);
        let bufs = self.resolve(&[Resource::Act(src), Resource::Act(dst)]);
        self.dispatch_with(&kernel, &bufs, params, ((cols as u32).div_ceil(256), 1, 1))
    }

    fn penalize(&mut self, logits: ActId, row: usize, tokens: &[u32], penalty: f32) -> BackendResult {
        self.record_pending()?;
        let cols = self.act(logits).cols;
        let mut distinct = Vec::new();
        super::distinct_below(tokens, cols, &mut distinct);
        if distinct.is_empty() {
            return Ok(());
        }
        let at = self.ids(&distinct, 1)?;
        let kernel = self.kernels.penalize.clone();
        let params = Params::new().u(distinct.len()).u(at).u(row * cols).f(penalty);
        let bufs = self.resolve(&[Resource::Ids, Resource::Act(logits)]);
        self.dispatch_with(&kernel, &bufs, params, ((distinct.len() as u32).div_ceil(64), 1, 1))
    }

    fn mask(&mut self, logits: ActId, row: usize, allowed: &[u32]) -> BackendResult {
        self.record_pending()?;
        let cols = self.act(logits).cols;
        let words = allowed.len().min(cols.div_ceil(32));
        // An empty bitset still needs a binding; its one word is never read.
        let at = self.ids(if words == 0 { &[0] } else { &allowed[..words] }, 1)?;
        let kernel = self.kernels.mask.clone();
        let params = Params::new().u(cols).u(words).u(at).u(row * cols);
        let bufs = self.resolve(&[Resource::Ids, Resource::Act(logits)]);
        self.dispatch_with(&kernel, &bufs, params, ((cols as u32).div_ceil(256), 1, 1))
    }

    fn read(&mut self, x: ActId) -> BackendResult<Vec<f32>> {
        let (buf, len) = (self.act(x).buf.buf.clone(), self.act(x).len);
        let bytes = self.flush(Some((&buf, len as u64 * 4)))?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }

    fn top_k(&mut self, logits: ActId, row: usize, k: usize) -> BackendResult<Vec<(u32, f32)>> {
        self.record_pending()?;
        const SEG: usize = 1024;
        let cols = self.act(logits).cols;
        let k = k.clamp(1, cols.min(super::MAX_TOP_K));
        self.scratch(|s| &mut s.top_k, 2, (cols.div_ceil(SEG) * k * 8) as u64);
        let kernel = self.kernels.top_k.clone();
        let (mut input, mut count, mut at, mut stride) = (Resource::Act(logits), cols, row * cols, 1);
        let mut round = 0;
        loop {
            let segs = count.div_ceil(SEG);
            let output = Resource::TopK(round % 2);
            let bufs = self.resolve(&[input, output]);
            self.dispatch_with(&kernel, &bufs, Params::new().u(count).u(at).u(stride).u(k), (segs as u32, 1, 1))?;
            (input, count, at, stride) = (output, segs * k, 0, 2);
            round += 1;
            if segs == 1 {
                break;
            }
        }
        let last = &self.top_k.as_ref().expect("made above").bufs[(round - 1) % 2];
        let last = last.buf.clone();
        let bytes = self.flush(Some((&last, (k * 8) as u64)))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let v = f32::from_le_bytes(c[..4].try_into().expect("4 bytes"));
                (u32::from_le_bytes(c[4..].try_into().expect("4 bytes")), v)
            })
            .collect())
    }
}

/// A buffer an op binds, named so the borrow of `self` ends before recording.
#[derive(Clone, Copy)]
enum Resource {
    /// Quants of part `.1` of a weight.
    Weight(WeightId, usize),
    /// Scales of part `.1` of a weight.
    WeightScales(WeightId, usize),
    /// An activation.
    Act(ActId),
    /// The per-submit token-id arena.
    Ids,
    /// A top-k scratch buffer.
    TopK(usize),
    /// Attention's partial sums.
    Spans,
    /// A write-only stand-in for an unused output slot.
    Dummy(usize),
}

impl GpuBackend {
    fn resolve(&self, res: &[Resource]) -> Vec<Buf> {
        res.iter()
            .map(|r| {
                let b = match *r {
                    Resource::Weight(w, i) => &self.weights[w.0].parts[i].q,
                    Resource::WeightScales(w, i) => &self.weights[w.0].parts[i].s,
                    Resource::Act(a) => &self.act(a).buf,
                    Resource::Ids => &self.rec.ids,
                    Resource::TopK(i) => &self.top_k.as_ref().expect("made before use").bufs[i],
                    Resource::Spans => &self.spans.as_ref().expect("made before use").bufs[0],
                    Resource::Dummy(i) => &self.dummies[i],
                };
                Buf { buf: b.buf.clone(), uid: b.uid }
            })
            .collect()
    }

    fn dispatch_with(&mut self, kernel: &Kernel, bufs: &[Buf], params: Params, groups: (u32, u32, u32)) -> BackendResult {
        let refs: Vec<&Buf> = bufs.iter().collect();
        self.dispatch(kernel, &refs, params, groups)
    }
}
