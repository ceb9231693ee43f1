//! [`Backend`] on the native CPU kernels: weights come from the model's [`CpuWeights`] (packed
//! once, shared by every session), activations are plain `Vec<f32>`s.
//!
//! - [`kernels`]: the multi-threaded kernels;
//! - [`packed`]: quantised weights repacked eight rows at a time, and the portable kernels;
//! - [`simd`]: the AVX2/FMA kernels over that layout;
//! - [`pool`]: the worker threads;
//! - [`weights`]: the one packed copy of a model's weights that every session shares.

pub mod kernels;
pub mod packed;
pub mod pool;
pub mod simd;
pub mod weights;

use std::sync::Arc;

use super::slab::Slab;
use super::{
    ActId, Activation, AttentionIo, AttentionShape, Backend, BackendResult, NormSpec, RopeSpec, Stats, WeightId, WeightSpec,
};
use kernels::{top_k, CpuKernels, CpuWeight};
use weights::CpuWeights;

/// An activation's elements and row width.
struct Act {
    cols: usize,
    data: Vec<f32>,
}

/// The CPU backend: [`CpuKernels`] over a model's [`CpuWeights`].
pub struct CpuBackend {
    kernels: CpuKernels,
    threads: usize,
    store: Arc<CpuWeights>,
    weights: Vec<CpuWeight>,
    acts: Slab<Act>,
    ops: u64,
}

impl CpuBackend {
    /// Kernels on `threads` threads over the weights of `store`.
    pub fn new(store: Arc<CpuWeights>, threads: usize) -> Self {
        Self { kernels: CpuKernels::new(threads), threads, store, weights: Vec::new(), acts: Slab::new(), ops: 0 }
    }

    /// Runs `f` with `out`'s buffer checked out, so inputs can be borrowed beside it.
    fn with_out<R>(&mut self, out: ActId, f: impl FnOnce(&Inputs<'_>, &mut CpuKernels, &mut [f32], usize) -> R) -> R {
        self.ops += 1;
        let slot = self.acts.get_mut(out);
        let (mut data, cols) = (std::mem::take(&mut slot.data), slot.cols);
        let result = f(&Inputs { acts: &self.acts, weights: &self.weights }, &mut self.kernels, &mut data, cols);
        self.acts.get_mut(out).data = data;
        result
    }
}

/// The tensors an op reads while its output is checked out.
struct Inputs<'a> {
    acts: &'a Slab<Act>,
    weights: &'a [CpuWeight],
}

impl Inputs<'_> {
    fn act(&self, id: ActId) -> &Act {
        self.acts.get(id)
    }

    fn weight(&self, id: WeightId) -> &CpuWeight {
        &self.weights[id.0]
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> String {
        format!("CPU, {} threads", self.threads)
    }

    fn stats(&self) -> Stats {
        Stats { dispatches: self.ops, ..Stats::default() }
    }

    fn weight(&mut self, spec: WeightSpec) -> BackendResult<WeightId> {
        self.weights.push(self.store.get(spec)?);
        Ok(WeightId(self.weights.len() - 1))
    }

    fn activation(&mut self, rows: usize, cols: usize) -> BackendResult<ActId> {
        Ok(self.acts.insert(Act { cols, data: vec![0.0; rows * cols] }))
    }

    fn free(&mut self, id: ActId) {
        self.acts.remove(id);
    }

    fn embed(&mut self, table: WeightId, tokens: &[u32], scale: f32, out: ActId) -> BackendResult {
        self.with_out(out, |b, k, o, _| k.embed(b.weight(table), tokens, scale, o));
        Ok(())
    }

    fn rms_norm(&mut self, x: ActId, weight: WeightId, spec: NormSpec, out: ActId) -> BackendResult {
        self.with_out(out, |b, k, o, cols| {
            let x = &b.act(x).data[..spec.rows * cols];
            k.rms_norm(x, b.weight(weight), spec.eps, spec.accumulate, o)
        });
        Ok(())
    }

    fn matmul(&mut self, w: WeightId, x: ActId, rows: usize, out: ActId, accumulate: bool) -> BackendResult {
        self.with_out(out, |b, k, o, _| {
            let w = b.weight(w);
            k.matmul(w, &b.act(x).data[..rows * w.cols()], rows, o, accumulate)
        });
        Ok(())
    }

    fn add_bias(&mut self, x: ActId, bias: WeightId, rows: usize) -> BackendResult {
        self.with_out(x, |b, k, o, _| k.add_bias(b.weight(bias), rows, o));
        Ok(())
    }

    fn rope(&mut self, x: ActId, s: RopeSpec) -> BackendResult {
        self.with_out(x, |b, _, o, cols| CpuKernels::rope(o, cols, s, s.factors.map(|f| b.weight(f))));
        Ok(())
    }

    fn attention(&mut self, io: AttentionIo, shape: AttentionShape) -> BackendResult {
        let mut kc = std::mem::take(&mut self.acts.get_mut(io.k_cache).data);
        let mut vc = std::mem::take(&mut self.acts.get_mut(io.v_cache).data);
        self.with_out(io.out, |b, k, o, _| {
            k.attention(&b.act(io.q).data, &b.act(io.k).data, &b.act(io.v).data, &mut kc, &mut vc, shape, o)
        });
        self.acts.get_mut(io.k_cache).data = kc;
        self.acts.get_mut(io.v_cache).data = vc;
        Ok(())
    }

    fn glu(&mut self, gate: ActId, up: ActId, act: Activation, rows: usize, out: ActId) -> BackendResult {
        self.with_out(out, |b, _, o, cols| {
            let n = rows * cols;
            CpuKernels::glu(&b.act(gate).data[..n], &b.act(up).data[..n], act, &mut o[..n]);
        });
        Ok(())
    }

    fn copy_row(&mut self, src: ActId, src_row: usize, dst: ActId, dst_row: usize) -> BackendResult {
        self.with_out(dst, |b, _, o, cols| {
            let s = &b.act(src).data[src_row * cols..(src_row + 1) * cols];
            o[dst_row * cols..(dst_row + 1) * cols].copy_from_slice(s);
        });
        Ok(())
    }

    fn penalize(&mut self, logits: ActId, row: usize, tokens: &[u32], penalty: f32) -> BackendResult {
        self.with_out(logits, |_, k, o, cols| k.penalize(&mut o[row * cols..(row + 1) * cols], tokens, penalty));
        Ok(())
    }

    fn mask(&mut self, logits: ActId, row: usize, allowed: &[u32]) -> BackendResult {
        self.with_out(logits, |_, _, o, cols| kernels::mask(&mut o[row * cols..(row + 1) * cols], allowed));
        Ok(())
    }

    fn read(&mut self, x: ActId) -> BackendResult<Vec<f32>> {
        Ok(self.acts.get(x).data.clone())
    }

    fn top_k(&mut self, logits: ActId, row: usize, k: usize) -> BackendResult<Vec<(u32, f32)>> {
        self.ops += 1;
        let a = self.acts.get(logits);
        Ok(top_k(&a.data[row * a.cols..(row + 1) * a.cols], k))
    }
}
