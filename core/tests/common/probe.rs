//! A backend wrapper for tests: records what each top-k returns and can act before a given call.

use std::sync::{Arc, Mutex};

use murmur_core::compute::{
    ActId, Activation, AttentionIo, AttentionShape, Backend, BackendResult, NormSpec, RopeSpec, Stats, WeightId, WeightSpec,
};

/// Top-k results seen, best first (at least five per call, for near-tie and logit checks).
pub type Seen = Arc<Mutex<Vec<Vec<(u32, f32)>>>>;

/// Runs before the n-th top-k call (counted from 1) on the wrapped backend.
pub type Hook<B> = Box<dyn FnMut(&mut B, usize) + Send>;

/// A backend that records what top-k returns and can run a hook before a given call.
pub struct Probe<B> {
    inner: B,
    seen: Seen,
    calls: usize,
    /// Runs before each top-k call with its number.
    pub before_top_k: Hook<B>,
}

impl<B: Backend> Probe<B> {
    /// `inner`, recording into `seen`.
    pub fn new(inner: B, seen: &Seen) -> Self {
        Self { inner, seen: Arc::clone(seen), calls: 0, before_top_k: Box::new(|_, _| {}) }
    }
}

impl<B: Backend> Backend for Probe<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn device(&self) -> String {
        self.inner.device()
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
    fn weight(&mut self, spec: WeightSpec) -> BackendResult<WeightId> {
        self.inner.weight(spec)
    }
    fn activation(&mut self, rows: usize, cols: usize) -> BackendResult<ActId> {
        self.inner.activation(rows, cols)
    }
    fn free(&mut self, id: ActId) {
        self.inner.free(id)
    }
    fn embed(&mut self, table: WeightId, tokens: &[u32], scale: f32, out: ActId) -> BackendResult {
        self.inner.embed(table, tokens, scale, out)
    }
    fn rms_norm(&mut self, x: ActId, weight: WeightId, spec: NormSpec, out: ActId) -> BackendResult {
        self.inner.rms_norm(x, weight, spec, out)
    }
    fn matmul(&mut self, w: WeightId, x: ActId, rows: usize, out: ActId, accumulate: bool) -> BackendResult {
        self.inner.matmul(w, x, rows, out, accumulate)
    }
    fn add_bias(&mut self, x: ActId, bias: WeightId, rows: usize) -> BackendResult {
        self.inner.add_bias(x, bias, rows)
    }
    fn rope(&mut self, x: ActId, spec: RopeSpec) -> BackendResult {
        self.inner.rope(x, spec)
    }
    fn attention(&mut self, io: AttentionIo, shape: AttentionShape) -> BackendResult {
        self.inner.attention(io, shape)
    }
    fn glu(&mut self, gate: ActId, up: ActId, act: Activation, rows: usize, out: ActId) -> BackendResult {
        self.inner.glu(gate, up, act, rows, out)
    }
    fn copy_row(&mut self, src: ActId, src_row: usize, dst: ActId, dst_row: usize) -> BackendResult {
        self.inner.copy_row(src, src_row, dst, dst_row)
    }
    fn penalize(&mut self, logits: ActId, row: usize, tokens: &[u32], penalty: f32) -> BackendResult {
        self.inner.penalize(logits, row, tokens, penalty)
    }
    fn mask(&mut self, logits: ActId, row: usize, allowed: &[u32]) -> BackendResult {
        self.inner.mask(logits, row, allowed)
    }
    fn read(&mut self, x: ActId) -> BackendResult<Vec<f32>> {
        self.inner.read(x)
    }
    fn top_k(&mut self, logits: ActId, row: usize, k: usize) -> BackendResult<Vec<(u32, f32)>> {
        self.calls += 1;
        (self.before_top_k)(&mut self.inner, self.calls);
        let best = self.inner.top_k(logits, row, k.max(5))?;
        self.seen.lock().unwrap().push(best.clone());
        Ok(best[..k.min(best.len())].to_vec())
    }
}
