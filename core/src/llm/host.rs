//! The guest's host: a sandboxed Wasmtime store per session and the checked `compute` import.
//!
//! Every handle, shape and range coming from the guest is validated here before a kernel runs,
//! so a buggy or hostile guest gets a `compute-error`, never a host crash or a read outside
//! its own tensors.

use std::sync::Arc;

use memmap2::Mmap;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use super::tensors::Tensor;
use super::tensors::Storage;
use crate::compute::cpu::{top_k, AttentionShape, CpuKernels, WeightView};
use crate::compute::quant::WeightType;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "inference",
    with: { "murmur:llm/compute.tensor": Tensor },
});

use murmur::llm::compute::{self, Candidate, ComputeError, Dtype, RopeStyle};

/// Called with each generated token id and its text; returns false to cancel.
pub type TokenSink = Box<dyn FnMut(u32, &str) -> bool + Send>;

/// Everything a session's store holds.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Guest memory cap.
    pub limits: StoreLimits,
    kernels: CpuKernels,
    model: Arc<Mmap>,
    host_bytes: usize,
    host_cap: usize,
    /// Where tokens go during a request.
    pub sink: Option<TokenSink>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

type Res<T> = Result<T, ComputeError>;

fn shape(msg: String) -> ComputeError {
    ComputeError::BadShape(msg)
}

impl State {
    /// A state that grants the guest nothing but `model` and `host_cap` bytes of host tensors.
    pub fn new(model: Arc<Mmap>, kernels: CpuKernels, limits: StoreLimits, host_cap: usize) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits,
            kernels,
            model,
            host_bytes: 0,
            host_cap,
            sink: None,
        }
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs { table: &self.table, model: &self.model }
    }

    fn get(&self, t: &Resource<Tensor>) -> Res<&Tensor> {
        self.inputs().get(t)
    }

    /// Runs `f` with the output tensor's buffer taken out of the table (so inputs can be
    /// borrowed alongside; an input that aliases the output then shows up as empty).
    fn with_out<R>(
        &mut self,
        out: &Resource<Tensor>,
        f: impl FnOnce(&Inputs<'_>, &mut CpuKernels, &mut [f32], usize) -> Res<R>,
    ) -> Res<R> {
        let mut data = take_host(&mut self.table, out)?;
        let cols = self.get(out)?.cols;
        let inputs = Inputs { table: &self.table, model: &self.model };
        let result = f(&inputs, &mut self.kernels, &mut data, cols);
        put_host(&mut self.table, out, data);
        result
    }
}

/// Read access to the session's tensors while an output buffer is checked out.
struct Inputs<'a> {
    table: &'a ResourceTable,
    model: &'a [u8],
}

impl<'a> Inputs<'a> {
    fn get(&self, t: &Resource<Tensor>) -> Res<&'a Tensor> {
        self.table.get(t).map_err(|e| ComputeError::BadHandle(e.to_string()))
    }

    fn weight(&self, t: &Resource<Tensor>, what: &str) -> Res<WeightView<'a>> {
        self.get(t)?.weight(self.model).ok_or_else(|| ComputeError::BadHandle(format!("{what} must be a weight tensor")))
    }

    fn act(&self, t: &Resource<Tensor>, what: &str) -> Res<(&'a [f32], usize)> {
        let tensor = self.get(t)?;
        let data = tensor.host().ok_or_else(|| ComputeError::BadHandle(format!("{what} must be an activation tensor")))?;
        if data.len() != tensor.len() {
            return Err(ComputeError::BadShape(format!("{what} is also the output of this op")));
        }
        Ok((data, tensor.cols))
    }
}

fn rows_fit(what: &str, rows: usize, n: u32) -> Res<usize> {
    let n = n as usize;
    if n == 0 || n > rows {
        return Err(shape(format!("{what} has {rows} rows; the op asked for {n}")));
    }
    Ok(n)
}

fn dtype_of(t: WeightType) -> Dtype {
    match t {
        WeightType::F32 => Dtype::F32,
        WeightType::F16 => Dtype::F16,
        WeightType::Q4_0 => Dtype::Q40,
        WeightType::Q4_1 => Dtype::Q41,
        WeightType::Q8_0 => Dtype::Q80,
    }
}

fn weight_type(d: Dtype) -> WeightType {
    match d {
        Dtype::F32 => WeightType::F32,
        Dtype::F16 => WeightType::F16,
        Dtype::Q40 => WeightType::Q4_0,
        Dtype::Q41 => WeightType::Q4_1,
        Dtype::Q80 => WeightType::Q8_0,
    }
}

impl compute::HostTensor for State {
    fn rows(&mut self, t: Resource<Tensor>) -> u32 {
        self.get(&t).map_or(0, |t| t.rows as u32)
    }

    fn cols(&mut self, t: Resource<Tensor>) -> u32 {
        self.get(&t).map_or(0, |t| t.cols as u32)
    }

    fn dtype(&mut self, t: Resource<Tensor>) -> Dtype {
        match self.get(&t).map(|t| &t.storage) {
            Ok(Storage::Mapped { ty, .. }) => dtype_of(*ty),
            _ => Dtype::F32,
        }
    }

    fn drop(&mut self, t: Resource<Tensor>) -> wasmtime::Result<()> {
        let tensor = self.table.delete(t)?;
        if let Storage::Host(v) = tensor.storage {
            self.host_bytes -= v.len() * 4;
        }
        Ok(())
    }
}

impl compute::Host for State {
    fn model_size(&mut self) -> u64 {
        self.model.len() as u64
    }

    fn read_model(&mut self, offset: u64, len: u32) -> Res<Vec<u8>> {
        let end = offset.checked_add(len as u64).filter(|&e| e <= self.model.len() as u64);
        match end {
            Some(end) => Ok(self.model[offset as usize..end as usize].to_vec()),
            None => Err(ComputeError::OutOfRange(format!(
                "bytes {offset}+{len} lie beyond the {}-byte model file",
                self.model.len()
            ))),
        }
    }

    fn weight(&mut self, dtype: Dtype, rows: u32, cols: u32, offset: u64) -> Res<Resource<Tensor>> {
        let ty = weight_type(dtype);
        let row_bytes = ty
            .row_bytes(cols as usize)
            .ok_or_else(|| shape(format!("{cols} columns do not fill whole {ty:?} blocks")))?;
        let len = (rows as usize).checked_mul(row_bytes).filter(|_| rows > 0 && cols > 0);
        let fits = len.and_then(|l| (offset as usize).checked_add(l)).is_some_and(|end| end <= self.model.len());
        if !fits {
            return Err(ComputeError::OutOfRange(format!(
                "a {rows}x{cols} {ty:?} weight at offset {offset} lies outside the {}-byte model file",
                self.model.len()
            )));
        }
        let storage = Storage::Mapped { ty, offset: offset as usize, len: len.expect("checked") };
        let tensor = Tensor { rows: rows as usize, cols: cols as usize, storage };
        self.table.push(tensor).map_err(|e| ComputeError::Exhausted(e.to_string()))
    }

    fn activation(&mut self, rows: u32, cols: u32) -> Res<Resource<Tensor>> {
        let bytes = (rows as usize).checked_mul(cols as usize).and_then(|n| n.checked_mul(4)).filter(|&b| b > 0);
        let bytes = bytes.ok_or_else(|| shape(format!("a {rows}x{cols} activation is empty or too large")))?;
        if self.host_bytes + bytes > self.host_cap {
            return Err(ComputeError::Exhausted(format!(
                "a {rows}x{cols} activation would take this session past its {} MiB of host tensors",
                self.host_cap >> 20
            )));
        }
        self.host_bytes += bytes;
        let tensor = Tensor { rows: rows as usize, cols: cols as usize, storage: Storage::Host(vec![0.0; bytes / 4]) };
        self.table.push(tensor).map_err(|e| ComputeError::Exhausted(e.to_string()))
    }

    fn embed(&mut self, table: Resource<Tensor>, tokens: Vec<u32>, out: Resource<Tensor>) -> Res<()> {
        self.with_out(&out, |s, k, o, cols| {
            let w = s.weight(&table, "the embedding table")?;
            if w.cols != cols || tokens.len() * cols > o.len() || tokens.is_empty() {
                return Err(shape(format!("{} tokens of width {} do not fit the output", tokens.len(), w.cols)));
            }
            if let Some(bad) = tokens.iter().find(|&&t| t as usize >= w.rows) {
                return Err(ComputeError::OutOfRange(format!("token {bad} is outside the {}-row table", w.rows)));
            }
            k.embed(w, &tokens, o);
            Ok(())
        })
    }

    fn rms_norm(&mut self, x: Resource<Tensor>, weight: Resource<Tensor>, eps: f32, n: u32, out: Resource<Tensor>) -> Res<()> {
        self.with_out(&out, |s, k, o, cols| {
            let (xs, xc) = s.act(&x, "the input")?;
            let w = s.weight(&weight, "the norm weight")?;
            let n = rows_fit("the input", xs.len() / xc, n)?;
            if xc != cols || w.cols != cols || w.rows != 1 || n * cols > o.len() {
                return Err(shape(format!("rms-norm of width {xc} with weight {}x{} into width {cols}", w.rows, w.cols)));
            }
            k.rms_norm(xs, w, eps, n, o);
            Ok(())
        })
    }

    fn matmul(&mut self, w: Resource<Tensor>, x: Resource<Tensor>, n: u32, out: Resource<Tensor>, accumulate: bool) -> Res<()> {
        self.with_out(&out, |s, k, o, cols| {
            let wv = s.weight(&w, "the matrix")?;
            let (xs, xc) = s.act(&x, "the input")?;
            let n = rows_fit("the input", xs.len() / xc, n)?;
            if wv.cols != xc || wv.rows != cols || n * cols > o.len() {
                return Err(shape(format!(
                    "a {}x{} matrix times {n} rows of width {xc} into rows of width {cols}",
                    wv.rows, wv.cols
                )));
            }
            k.matmul(wv, &xs[..n * xc], n, o, accumulate).map_err(|e| ComputeError::Exhausted(e.to_string()))
        })
    }

    fn rope(&mut self, x: Resource<Tensor>, head_dim: u32, pos: u32, n: u32, base: f32, style: RopeStyle) -> Res<()> {
        self.with_out(&x, |_, _, o, cols| {
            let n = rows_fit("the input", o.len() / cols.max(1), n)?;
            let hd = head_dim as usize;
            if hd == 0 || hd % 2 != 0 || hd > 512 || cols % hd != 0 {
                return Err(shape(format!("head width {hd} does not divide rows of {cols}")));
            }
            CpuKernels::rope(o, cols, hd, pos as usize, n, base, style == RopeStyle::Interleaved);
            Ok(())
        })
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
        out: Resource<Tensor>,
    ) -> Res<()> {
        if k_cache.rep() == v_cache.rep() {
            return Err(shape("the key and value caches must differ".into()));
        }
        // Take both caches out so they can be written while the inputs are borrowed.
        let mut kc = take_host(&mut self.table, &k_cache)?;
        let vc = take_host(&mut self.table, &v_cache);
        let mut vc = match vc {
            Ok(v) => v,
            Err(e) => {
                put_host(&mut self.table, &k_cache, kc);
                return Err(e);
            }
        };
        let result = self.with_out(&out, |s, kern, o, qd| {
            let (qs, qc) = s.act(&q, "the queries")?;
            let (ks, kvd) = s.act(&k, "the keys")?;
            let (vs, vd) = s.act(&v, "the values")?;
            let (hd, pos) = (head_dim as usize, pos as usize);
            let n = rows_fit("the queries", qs.len() / qc, n)?;
            if hd == 0 || hd > 256 || qc != qd || qd % hd != 0 || kvd % hd != 0 || vd != kvd || (qd / hd) % (kvd / hd) != 0 {
                return Err(shape(format!("attention of {qc}-wide queries and {kvd}-wide keys with head width {hd}")));
            }
            if ks.len() < n * kvd || vs.len() < n * kvd || o.len() < n * qd {
                return Err(shape(format!("{n} tokens do not fit the key/value/output tensors")));
            }
            if kc.len() % kvd != 0 || kc.len() != vc.len() || (pos + n) * kvd > kc.len() {
                return Err(ComputeError::OutOfRange(format!(
                    "positions {pos}..{} do not fit caches of {} rows of width {kvd}",
                    pos + n,
                    kc.len() / kvd.max(1)
                )));
            }
            let shape = AttentionShape { heads: qd / hd, kv_heads: kvd / hd, head_dim: hd, pos, n };
            kern.attention(qs, ks, vs, &mut kc, &mut vc, shape, o);
            Ok(())
        });
        put_host(&mut self.table, &k_cache, kc);
        put_host(&mut self.table, &v_cache, vc);
        result
    }

    fn silu_mul(&mut self, gate: Resource<Tensor>, up: Resource<Tensor>, n: u32, out: Resource<Tensor>) -> Res<()> {
        self.with_out(&out, |s, _, o, cols| {
            let (g, gc) = s.act(&gate, "the gate")?;
            let (u, uc) = s.act(&up, "the up projection")?;
            let n = rows_fit("the gate", g.len() / gc, n)?;
            if gc != cols || uc != cols || u.len() < n * cols || o.len() < n * cols {
                return Err(shape(format!("silu-mul of widths {gc} and {uc} into {cols}")));
            }
            CpuKernels::silu_mul(&g[..n * cols], &u[..n * cols], &mut o[..n * cols]);
            Ok(())
        })
    }

    fn copy_row(&mut self, src: Resource<Tensor>, src_row: u32, dst: Resource<Tensor>, dst_row: u32) -> Res<()> {
        self.with_out(&dst, |s, _, o, cols| {
            let (xs, xc) = s.act(&src, "the source")?;
            let (sr, dr) = (src_row as usize, dst_row as usize);
            if xc != cols || (sr + 1) * xc > xs.len() || (dr + 1) * cols > o.len() {
                return Err(ComputeError::OutOfRange(format!("row {sr} → row {dr} is outside the tensors")));
            }
            o[dr * cols..(dr + 1) * cols].copy_from_slice(&xs[sr * xc..(sr + 1) * xc]);
            Ok(())
        })
    }

    fn penalize(&mut self, logits: Resource<Tensor>, row: u32, tokens: Vec<u32>, penalty: f32) -> Res<()> {
        self.with_out(&logits, |_, k, o, cols| {
            let r = row as usize;
            if (r + 1) * cols > o.len() {
                return Err(ComputeError::OutOfRange(format!("row {r} is outside the logits")));
            }
            if !(penalty.is_finite() && penalty > 0.0) {
                return Err(shape(format!("penalty {penalty} must be a positive number")));
            }
            k.penalize(&mut o[r * cols..(r + 1) * cols], &tokens, penalty);
            Ok(())
        })
    }

    fn top_k(&mut self, logits: Resource<Tensor>, row: u32, k: u32) -> Res<Vec<Candidate>> {
        let (xs, cols) = self.inputs().act(&logits, "the logits")?;
        let r = row as usize;
        if (r + 1) * cols > xs.len() || k == 0 {
            return Err(ComputeError::OutOfRange(format!("top-{k} of row {r} is outside the logits")));
        }
        let best = top_k(&xs[r * cols..(r + 1) * cols], (k as usize).min(cols));
        Ok(best.into_iter().map(|(id, logit)| Candidate { id, logit }).collect())
    }
}

fn take_host(table: &mut ResourceTable, t: &Resource<Tensor>) -> Res<Vec<f32>> {
    match table.get_mut(t).map_err(|e| ComputeError::BadHandle(e.to_string()))?.storage {
        Storage::Host(ref mut v) => Ok(std::mem::take(v)),
        Storage::Mapped { .. } => Err(ComputeError::BadHandle("an output must be an activation tensor".into())),
    }
}

fn put_host(table: &mut ResourceTable, t: &Resource<Tensor>, data: Vec<f32>) {
    if let Ok(Tensor { storage: Storage::Host(v), .. }) = table.get_mut(t) {
        *v = data;
    }
}

impl murmur::llm::output::Host for State {
    fn token(&mut self, id: u32, text: String) -> bool {
        self.sink.as_mut().is_none_or(|sink| sink(id, &text))
    }
}
