//! The guest's host: a sandboxed Wasmtime store per session and the checked `compute` import.
//!
//! Every handle, shape and range coming from the guest is validated here before a kernel runs,
//! so a buggy or hostile guest gets a `compute-error`, never a host crash or a read outside
//! its own tensors.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::tensors::Kind;
pub use super::tensors::Tensor;
use crate::compute::{
    ActId, Activation, AttentionIo, AttentionShape, Backend, BackendError, ModelFile, NormSpec, RopeSpec, WeightHolder,
    WeightSpec, WeightType, MAX_TOP_K,
};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "inference",
    with: { "murmur:llm/compute.tensor": Tensor },
    // A handle the table does not hold is a host bug, not a value: the guest traps.
    imports: {
        "murmur:llm/compute.[method]tensor.rows": trappable,
        "murmur:llm/compute.[method]tensor.cols": trappable,
        "murmur:llm/compute.[method]tensor.dtype": trappable,
    },
});

use murmur::llm::compute::{self, Candidate, ComputeError, Dtype, Nonlinearity, RopeStyle};

/// Called with each generated token id and its text; returns false to cancel.
pub type TokenSink = Box<dyn FnMut(u32, &str) -> bool + Send>;

/// Everything a session's store holds.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Guest memory cap.
    pub limits: StoreLimits,
    backend: Box<dyn Backend>,
    model: Arc<ModelFile>,
    host_bytes: usize,
    host_cap: usize,
    /// Where tokens go during a request.
    pub sink: Option<TokenSink>,
    /// Set when the backend's device stopped working; the session is then unusable.
    pub device_lost: Option<String>,
    /// Set when the model file changed on disk under a read; the request then fails saying so.
    pub model_changed: bool,
    /// When the guest last got work done through the host (the stall deadline's clock).
    pub last_progress: Instant,
    weight_bytes: usize,
    tensors: usize,
}

/// Most tensors a session may hold at once (a llama of 100 blocks needs about 1,000).
const MAX_TENSORS: usize = 1 << 16;
/// Most bytes one `read-model` call returns (the guest reads in 1 MiB chunks).
const MAX_READ: u32 = 64 << 20;

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

type GuestResult<T> = Result<T, ComputeError>;

fn shape(msg: String) -> ComputeError {
    ComputeError::BadShape(msg)
}

impl State {
    /// A state that grants the guest nothing but `model`, the kernels of `backend`, and
    /// `host_cap` bytes of activations.
    pub fn new(model: Arc<ModelFile>, backend: Box<dyn Backend>, limits: StoreLimits, host_cap: usize) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits,
            backend,
            model,
            host_bytes: 0,
            host_cap,
            sink: None,
            device_lost: None,
            model_changed: false,
            last_progress: Instant::now(),
            weight_bytes: 0,
            tensors: 0,
        }
    }

    /// Room for one more tensor handle, or the reason there is none.
    fn tensor_slot(&self) -> GuestResult<()> {
        if self.tensors >= MAX_TENSORS {
            return Err(ComputeError::Exhausted(format!("a session may hold at most {MAX_TENSORS} tensors")));
        }
        Ok(())
    }

    fn push(&mut self, tensor: Tensor) -> GuestResult<Resource<Tensor>> {
        let handle = self.table.push(tensor).map_err(|e| ComputeError::Exhausted(e.to_string()))?;
        self.tensors += 1;
        Ok(handle)
    }

    /// Where the model file is.
    pub fn model_path(&self) -> &std::path::Path {
        self.model.path()
    }

    /// The kernels.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    fn get(&self, t: &Resource<Tensor>) -> GuestResult<&Tensor> {
        self.table.get(t).map_err(|e| ComputeError::BadHandle(e.to_string()))
    }

    /// The tensor behind a handle a method was called on; a trap if the table lacks it.
    fn lookup(&self, t: &Resource<Tensor>) -> wasmtime::Result<&Tensor> {
        Ok(self.table.get(t)?)
    }

    fn weight_of(&self, t: &Resource<Tensor>, what: &str) -> GuestResult<(WeightSpec, crate::compute::WeightId)> {
        match self.get(t)?.kind {
            Kind::Weight(spec, id) => Ok((spec, id)),
            Kind::Activation(_) => Err(ComputeError::BadHandle(format!("{what} must be a weight tensor"))),
        }
    }

    /// An activation's id, rows and columns.
    fn act(&self, t: &Resource<Tensor>, what: &str) -> GuestResult<(ActId, usize, usize)> {
        let tensor = self.get(t)?;
        match tensor.kind {
            Kind::Activation(id) => Ok((id, tensor.rows, tensor.cols)),
            Kind::Weight(..) => Err(ComputeError::BadHandle(format!("{what} must be an activation tensor"))),
        }
    }

    /// Records a failed device so the session can fall back, and turns the error into the
    /// guest's terms.
    fn guest_result<T>(&mut self, result: Result<T, BackendError>) -> GuestResult<T> {
        self.last_progress = Instant::now();
        result.map_err(|e| match e {
            BackendError::Exhausted(m) => ComputeError::Exhausted(m),
            BackendError::Unsupported(m) => ComputeError::Unsupported(m),
            BackendError::ModelChanged(e) => {
                self.model_changed = true;
                ComputeError::OutOfRange(e.to_string())
            }
            e @ BackendError::DeviceLost(_) => {
                let m = e.to_string();
                tracing::warn!(backend = self.backend.name(), "{m}");
                self.device_lost.get_or_insert(m.clone());
                ComputeError::Device(m)
            }
        })
    }
}

/// Refuses an op whose output is also one of its inputs.
fn distinct(out: ActId, inputs: &[ActId]) -> GuestResult<()> {
    if inputs.contains(&out) {
        return Err(shape("an op's output cannot also be its input".into()));
    }
    Ok(())
}

fn rows_fit(what: &str, rows: usize, n: u32) -> GuestResult<usize> {
    let n = n as usize;
    if n == 0 || n > rows {
        return Err(shape(format!("{what} has {rows} rows; the op asked for {n}")));
    }
    Ok(n)
}

/// The contract's weight types and the backends' own, one pair each.
const DTYPES: [(Dtype, WeightType); 15] = [
    (Dtype::F32, WeightType::F32),
    (Dtype::F16, WeightType::F16),
    (Dtype::Bf16, WeightType::BF16),
    (Dtype::Q40, WeightType::Q4_0),
    (Dtype::Q41, WeightType::Q4_1),
    (Dtype::Q50, WeightType::Q5_0),
    (Dtype::Q51, WeightType::Q5_1),
    (Dtype::Q80, WeightType::Q8_0),
    (Dtype::Q2k, WeightType::Q2K),
    (Dtype::Q3k, WeightType::Q3K),
    (Dtype::Q4k, WeightType::Q4K),
    (Dtype::Q5k, WeightType::Q5K),
    (Dtype::Q6k, WeightType::Q6K),
    (Dtype::Iq4nl, WeightType::IQ4NL),
    (Dtype::Iq4xs, WeightType::IQ4XS),
];

fn dtype_of(t: WeightType) -> Dtype {
    DTYPES.iter().find(|(_, w)| *w == t).expect("every weight type has a dtype").0
}

fn weight_type(d: Dtype) -> WeightType {
    DTYPES.iter().find(|(x, _)| *x == d).expect("every dtype has a weight type").1
}

impl compute::HostTensor for State {
    fn rows(&mut self, t: Resource<Tensor>) -> wasmtime::Result<u32> {
        Ok(self.lookup(&t)?.rows as u32)
    }

    fn cols(&mut self, t: Resource<Tensor>) -> wasmtime::Result<u32> {
        Ok(self.lookup(&t)?.cols as u32)
    }

    fn dtype(&mut self, t: Resource<Tensor>) -> wasmtime::Result<Dtype> {
        Ok(match self.lookup(&t)?.kind {
            Kind::Weight(spec, _) => dtype_of(spec.ty),
            Kind::Activation(_) => Dtype::F32,
        })
    }

    fn drop(&mut self, t: Resource<Tensor>) -> wasmtime::Result<()> {
        let tensor = self.table.delete(t)?;
        self.tensors -= 1;
        match tensor.kind {
            Kind::Activation(id) => {
                self.host_bytes -= tensor.len() * 4;
                self.backend.free(id);
            }
            Kind::Weight(spec, _) => self.weight_bytes -= spec.len(),
        }
        Ok(())
    }
}

impl compute::Host for State {
    fn model_size(&mut self) -> u64 {
        self.model.len()
    }

    fn model_parts(&mut self) -> Vec<u64> {
        self.model.starts()
    }

    fn read_model(&mut self, offset: u64, len: u32) -> GuestResult<Vec<u8>> {
        self.last_progress = Instant::now();
        if len > MAX_READ {
            return Err(ComputeError::OutOfRange(format!("a read of {len} bytes; at most {MAX_READ} per call")));
        }
        if offset.checked_add(len as u64).is_none_or(|end| end > self.model.len()) {
            return Err(ComputeError::OutOfRange(format!(
                "bytes {offset}+{len} lie beyond the {}-byte model file",
                self.model.len()
            )));
        }
        let read = self.model.read_remembered(offset, len).map_err(BackendError::from);
        self.guest_result(read)
    }

    fn weight(&mut self, dtype: Dtype, rows: u32, cols: u32, offset: u64) -> GuestResult<Resource<Tensor>> {
        let ty = weight_type(dtype);
        let row_bytes =
            ty.row_bytes(cols as usize).ok_or_else(|| shape(format!("{cols} columns do not fill whole {ty:?} blocks")))?;
        let len = (rows as usize).checked_mul(row_bytes).filter(|_| rows > 0 && cols > 0);
        let fits = len.and_then(|l| (offset as usize).checked_add(l)).is_some_and(|end| end as u64 <= self.model.len());
        if !fits {
            return Err(ComputeError::OutOfRange(format!(
                "a {rows}x{cols} {ty:?} weight at offset {offset} lies outside the {}-byte model file",
                self.model.len()
            )));
        }
        let spec = WeightSpec { ty, rows: rows as usize, cols: cols as usize, offset: offset as usize };
        let cap = WeightHolder::Guest.cap(self.model.len());
        if self.weight_bytes + spec.len() > cap {
            return Err(ComputeError::Exhausted(format!(
                "weights of more than twice the model file's {} bytes at once",
                self.model.len()
            )));
        }
        self.tensor_slot()?;
        let result = self.backend.weight(spec);
        let id = self.guest_result(result)?;
        self.weight_bytes += spec.len();
        let tensor = Tensor { rows: spec.rows, cols: spec.cols, kind: Kind::Weight(spec, id) };
        self.push(tensor)
    }

    fn activation(&mut self, rows: u32, cols: u32) -> GuestResult<Resource<Tensor>> {
        let bytes = (rows as usize).checked_mul(cols as usize).and_then(|n| n.checked_mul(4)).filter(|&b| b > 0);
        let bytes = bytes.ok_or_else(|| shape(format!("a {rows}x{cols} activation is empty or too large")))?;
        if self.host_bytes + bytes > self.host_cap {
            return Err(ComputeError::Exhausted(format!(
                "a {rows}x{cols} activation would take this session past its {} MiB of host tensors",
                self.host_cap >> 20
            )));
        }
        self.tensor_slot()?;
        let result = self.backend.activation(rows as usize, cols as usize);
        let id = self.guest_result(result)?;
        self.host_bytes += bytes;
        let tensor = Tensor { rows: rows as usize, cols: cols as usize, kind: Kind::Activation(id) };
        self.push(tensor)
    }

    fn embed(&mut self, table: Resource<Tensor>, tokens: Vec<u32>, scale: f32, out: Resource<Tensor>) -> GuestResult<()> {
        let (w, wid) = self.weight_of(&table, "the embedding table")?;
        let (o, rows, cols) = self.act(&out, "the output")?;
        if w.cols != cols || tokens.len() > rows || tokens.is_empty() {
            return Err(shape(format!("{} tokens of width {} do not fit the output", tokens.len(), w.cols)));
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= w.rows) {
            return Err(ComputeError::OutOfRange(format!("token {bad} is outside the {}-row table", w.rows)));
        }
        if !scale.is_finite() {
            return Err(shape(format!("embedding scale {scale} is not a number")));
        }
        let result = self.backend.embed(wid, &tokens, scale, o);
        self.guest_result(result)
    }

    fn rms_norm(
        &mut self,
        x: Resource<Tensor>,
        weight: Resource<Tensor>,
        eps: f32,
        n: u32,
        out: Resource<Tensor>,
        accumulate: bool,
    ) -> GuestResult<()> {
        let (xi, xr, xc) = self.act(&x, "the input")?;
        let (w, wid) = self.weight_of(&weight, "the norm weight")?;
        let (o, or, cols) = self.act(&out, "the output")?;
        distinct(o, &[xi])?;
        let n = rows_fit("the input", xr.min(or), n)?;
        if xc != cols || w.rows != 1 || w.cols == 0 || cols % w.cols != 0 {
            return Err(shape(format!("rms-norm of width {xc} with weight {}x{} into width {cols}", w.rows, w.cols)));
        }
        let result = self.backend.rms_norm(xi, wid, NormSpec { eps, rows: n, accumulate }, o);
        self.guest_result(result)
    }

    fn matmul(
        &mut self,
        w: Resource<Tensor>,
        x: Resource<Tensor>,
        n: u32,
        out: Resource<Tensor>,
        accumulate: bool,
    ) -> GuestResult<()> {
        let (wv, wid) = self.weight_of(&w, "the matrix")?;
        let (xi, xr, xc) = self.act(&x, "the input")?;
        let (o, or, cols) = self.act(&out, "the output")?;
        distinct(o, &[xi])?;
        let n = rows_fit("the input", xr, n)?;
        if wv.cols != xc || wv.rows != cols || n > or {
            return Err(shape(format!(
                "a {}x{} matrix times {n} rows of width {xc} into rows of width {cols}",
                wv.rows, wv.cols
            )));
        }
        let result = self.backend.matmul(wid, xi, n, o, accumulate);
        self.guest_result(result)
    }

    fn add_bias(&mut self, x: Resource<Tensor>, bias: Resource<Tensor>, n: u32) -> GuestResult<()> {
        let (xi, xr, cols) = self.act(&x, "the input")?;
        let (b, bid) = self.weight_of(&bias, "the bias")?;
        let n = rows_fit("the input", xr, n)?;
        if b.rows != 1 || b.cols != cols {
            return Err(shape(format!("a {}x{} bias added to rows of {cols}", b.rows, b.cols)));
        }
        let result = self.backend.add_bias(xi, bid, n);
        self.guest_result(result)
    }

    fn rope(
        &mut self,
        x: Resource<Tensor>,
        head_dim: u32,
        pos: u32,
        n: u32,
        base: f32,
        style: RopeStyle,
        factors: Option<Resource<Tensor>>,
    ) -> GuestResult<()> {
        let (xi, rows, cols) = self.act(&x, "the input")?;
        let n = rows_fit("the input", rows, n)?;
        let hd = head_dim as usize;
        if hd == 0 || hd % 2 != 0 || hd > 512 || cols % hd != 0 {
            return Err(shape(format!("head width {hd} does not divide rows of {cols}")));
        }
        let factors = match factors {
            None => None,
            Some(f) => {
                let (spec, id) = self.weight_of(&f, "the rotation's factors")?;
                if spec.ty != WeightType::F32 || spec.rows != 1 || spec.cols != hd / 2 {
                    return Err(shape(format!(
                        "rotation factors must be one F32 row of {} (half the head), not {}x{} {:?}",
                        hd / 2,
                        spec.rows,
                        spec.cols,
                        spec.ty
                    )));
                }
                Some(id)
            }
        };
        let interleaved = style == RopeStyle::Interleaved;
        let spec = RopeSpec { head_dim: hd, pos: pos as usize, n, base, interleaved, factors };
        let result = self.backend.rope(xi, spec);
        self.guest_result(result)
    }

    fn attention(
        &mut self,
        q: Resource<Tensor>,
        k: Resource<Tensor>,
        v: Resource<Tensor>,
        k_cache: Resource<Tensor>,
        v_cache: Resource<Tensor>,
        head_dim: u32,
        pos: u32,
        n: u32,
        window: Option<u32>,
        out: Resource<Tensor>,
    ) -> GuestResult<()> {
        let (qi, qr, qc) = self.act(&q, "the queries")?;
        let (ki, kr, kvd) = self.act(&k, "the keys")?;
        let (vi, vr, vd) = self.act(&v, "the values")?;
        let (kci, kcr, kcc) = self.act(&k_cache, "the key cache")?;
        let (vci, vcr, vcc) = self.act(&v_cache, "the value cache")?;
        let (o, or, qd) = self.act(&out, "the output")?;
        let ids = [qi, ki, vi, kci, vci];
        if (1..ids.len()).any(|i| ids[..i].contains(&ids[i])) {
            return Err(shape("attention's queries, keys, values and caches must be distinct tensors".into()));
        }
        distinct(o, &ids)?;
        let (hd, pos) = (head_dim as usize, pos as usize);
        let n = rows_fit("the queries", qr, n)?;
        if hd == 0 || hd > 256 || qc != qd || qd % hd != 0 || kvd % hd != 0 || vd != kvd || (qd / hd) % (kvd / hd) != 0 {
            return Err(shape(format!("attention of {qc}-wide queries and {kvd}-wide keys with head width {hd}")));
        }
        if kr < n || vr < n || or < n {
            return Err(shape(format!("{n} tokens do not fit the key/value/output tensors")));
        }
        if kcc != kvd || vcc != kvd || kcr != vcr || pos + n > kcr {
            return Err(ComputeError::OutOfRange(format!(
                "positions {pos}..{} do not fit caches of {kcr} rows of width {kcc} (keys are {kvd} wide)",
                pos + n
            )));
        }
        if window == Some(0) {
            return Err(shape("an attention window of no positions".into()));
        }
        let window = window.map(|w| w as usize);
        let shape = AttentionShape { heads: qd / hd, kv_heads: kvd / hd, head_dim: hd, pos, n, window };
        let io = AttentionIo { q: qi, k: ki, v: vi, k_cache: kci, v_cache: vci, out: o };
        let result = self.backend.attention(io, shape);
        self.guest_result(result)
    }

    fn glu(
        &mut self,
        gate: Resource<Tensor>,
        up: Resource<Tensor>,
        act: Nonlinearity,
        n: u32,
        out: Resource<Tensor>,
    ) -> GuestResult<()> {
        let (gi, gr, gc) = self.act(&gate, "the gate")?;
        let (ui, ur, uc) = self.act(&up, "the up projection")?;
        let (o, or, cols) = self.act(&out, "the output")?;
        distinct(o, &[gi, ui])?;
        let n = rows_fit("the gate", gr.min(ur).min(or), n)?;
        if gc != cols || uc != cols {
            return Err(shape(format!("glu of widths {gc} and {uc} into {cols}")));
        }
        let act = match act {
            Nonlinearity::Silu => Activation::Silu,
            Nonlinearity::GeluTanh => Activation::GeluTanh,
        };
        let result = self.backend.glu(gi, ui, act, n, o);
        self.guest_result(result)
    }

    fn copy_row(&mut self, src: Resource<Tensor>, src_row: u32, dst: Resource<Tensor>, dst_row: u32) -> GuestResult<()> {
        let (si, sr, sc) = self.act(&src, "the source")?;
        let (di, dr, cols) = self.act(&dst, "the destination")?;
        distinct(di, &[si])?;
        let (from, to) = (src_row as usize, dst_row as usize);
        if sc != cols || from >= sr || to >= dr {
            return Err(ComputeError::OutOfRange(format!("row {from} → row {to} is outside the tensors")));
        }
        let result = self.backend.copy_row(si, from, di, to);
        self.guest_result(result)
    }

    fn penalize(&mut self, logits: Resource<Tensor>, row: u32, tokens: Vec<u32>, penalty: f32) -> GuestResult<()> {
        let (li, rows, _) = self.act(&logits, "the logits")?;
        if row as usize >= rows {
            return Err(ComputeError::OutOfRange(format!("row {row} is outside the logits")));
        }
        if !(penalty.is_finite() && penalty > 0.0) {
            return Err(shape(format!("penalty {penalty} must be a positive number")));
        }
        let result = self.backend.penalize(li, row as usize, &tokens, penalty);
        self.guest_result(result)
    }

    fn mask(&mut self, logits: Resource<Tensor>, row: u32, allowed: Vec<u32>) -> GuestResult<()> {
        let (li, rows, _) = self.act(&logits, "the logits")?;
        if row as usize >= rows {
            return Err(ComputeError::OutOfRange(format!("row {row} is outside the logits")));
        }
        let result = self.backend.mask(li, row as usize, &allowed);
        self.guest_result(result)
    }

    fn top_k(&mut self, logits: Resource<Tensor>, row: u32, k: u32) -> GuestResult<Vec<Candidate>> {
        let (li, rows, cols) = self.act(&logits, "the logits")?;
        if row as usize >= rows || k == 0 {
            return Err(ComputeError::OutOfRange(format!("top-{k} of row {row} is outside the logits")));
        }
        // The one rule for how many candidates come back: a larger k gets the most there are.
        let result = self.backend.top_k(li, row as usize, (k as usize).min(cols).min(MAX_TOP_K));
        let best = self.guest_result(result)?;
        Ok(best.into_iter().map(|(id, logit)| Candidate { id, logit }).collect())
    }
}

impl murmur::llm::output::Host for State {
    fn token(&mut self, id: u32, text: String) -> bool {
        self.last_progress = Instant::now();
        self.sink.as_mut().is_none_or(|sink| sink(id, &text))
    }
}
