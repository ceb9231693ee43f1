//! The native CPU backend: multi-threaded kernels over the model's weights as the CPU holds them
//! ([`CpuWeight`]). Quantised mat-muls quantise the activations to 8 bits once per call and use
//! integer dot products (AVX2 when the CPU has it).

use std::sync::Arc;

use super::packed::{kernel_for, PackedWeight, ROWS, TOKENS};
use super::pool::{share, ThreadPool};
use super::simd::{attend, dot_f32};
use crate::compute::model_file::ModelFile;
use crate::compute::quant::{dequantize_row, quantize_activations, BlockQ8, WeightType};
use crate::compute::{Activation, RopeSpec};

/// A weight as the CPU kernels hold it: a quantised one packed (see [`super::packed`]), a float
/// one as the file stores it.
#[derive(Clone)]
pub enum CpuWeight {
    /// A quantised weight, and where its exact rows are when packing rounded its scales.
    Packed(Arc<PackedWeight>, Option<FileRows>),
    /// An F32, F16 or BF16 weight.
    Float(FloatWeight),
}

/// An F32, F16 or BF16 weight, as the file stores it.
#[derive(Clone)]
pub struct FloatWeight {
    /// Storage type.
    pub ty: WeightType,
    /// Rows.
    pub rows: usize,
    /// Elements per row.
    pub cols: usize,
    /// The file's bytes.
    pub data: Arc<[u8]>,
}

impl FloatWeight {
    /// The weight viewed in place.
    pub fn view(&self) -> WeightView<'_> {
        WeightView { ty: self.ty, rows: self.rows, cols: self.cols, data: &self.data }
    }
}

/// A quantised weight's rows in the model file, for the lookups that need the file's exact
/// values (an embedding) where packing rounded the scales.
#[derive(Clone)]
pub struct FileRows {
    /// The file.
    pub model: Arc<ModelFile>,
    /// Where the weight starts in it.
    pub offset: usize,
}

impl FileRows {
    /// Row `r` of `packed`'s source as f32 values into `out`, through `raw`; false when the
    /// file changed since it was opened (and `out` is untouched).
    fn dequantize_row(&self, packed: &PackedWeight, r: usize, raw: &mut Vec<u8>, out: &mut [f32]) -> bool {
        let row_bytes = packed.ty.row_bytes(packed.cols()).expect("a packed weight has whole blocks");
        raw.resize(row_bytes, 0);
        let read = self.model.read_at((self.offset + r * row_bytes) as u64, raw).is_ok();
        if read {
            dequantize_row(packed.ty, raw, &mut out[..packed.cols()]);
        }
        read
    }
}

impl CpuWeight {
    /// Row `r` as f32 values into `out` (at least a row long), as the kernels hold it.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        match self {
            Self::Packed(p, _) => p.dequantize_row(r, out),
            Self::Float(f) => f.view().dequantize_row(r, out),
        }
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        match self {
            Self::Packed(p, _) => p.cols(),
            Self::Float(f) => f.cols,
        }
    }
}

/// A weight matrix viewed in place: `rows` rows of `cols` elements stored as `ty`.
#[derive(Clone, Copy)]
pub struct WeightView<'a> {
    /// Storage type.
    pub ty: WeightType,
    /// Rows (output features).
    pub rows: usize,
    /// Elements per row (input features).
    pub cols: usize,
    /// The raw bytes, `rows * row_bytes` long.
    pub data: &'a [u8],
}

impl WeightView<'_> {
    fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols).expect("checked when the weight was created")
    }

    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Row `r` as f32 values.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        dequantize_row(self.ty, self.row(r), &mut out[..self.cols]);
    }
}

/// Shape of an attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Position of the first new token.
    pub pos: usize,
    /// New tokens.
    pub n: usize,
    /// Positions each query sees, its own among them (a sliding window), or all before it.
    pub window: Option<usize>,
}

impl AttentionShape {
    /// The first cache row that the query at position `p` attends.
    pub fn first_seen(&self, p: usize) -> usize {
        self.window.map_or(0, |w| (p + 1).saturating_sub(w))
    }
}

/// A raw pointer that shares can write through at disjoint indices.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: every kernel below gives each share a disjoint set of indices.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// # Safety
    /// `i` is in bounds and written by exactly one share.
    unsafe fn write(self, i: usize, v: f32, accumulate: bool) {
        let p = self.0.add(i);
        *p = if accumulate { *p + v } else { v };
    }
}

/// The CPU kernels with their thread pool and reusable scratch.
pub struct CpuKernels {
    pool: ThreadPool,
    xq: Vec<BlockQ8>,
    rows_f32: Vec<Vec<f32>>,
    scores: Vec<Vec<f32>>,
    /// One dequantised weight row (a norm's scales, a bias).
    norm_w: Vec<f32>,
    dedup: Vec<u32>,
    /// One row of a weight's file bytes.
    raw_row: Vec<u8>,
}

impl CpuKernels {
    /// Kernels running on `threads` threads.
    pub fn new(threads: usize) -> Self {
        let pool = ThreadPool::new(threads);
        let shares = pool.threads();
        Self {
            pool,
            xq: Vec::new(),
            rows_f32: vec![Vec::new(); shares],
            scores: vec![Vec::new(); shares],
            norm_w: Vec::new(),
            dedup: Vec::new(),
            raw_row: Vec::new(),
        }
    }

    /// `out[t][r] (+)= dot(w[r], x[t])` for `n` rows of `x`.
    pub fn matmul(&mut self, w: &CpuWeight, x: &[f32], n: usize, out: &mut [f32], accumulate: bool) {
        let out_ptr = SharedMut(out.as_mut_ptr());
        let shares = self.pool.threads();
        match w {
            CpuWeight::Float(f) => {
                let w = f.view();
                let (rows, cols) = (w.rows, w.cols);
                for buf in &mut self.rows_f32 {
                    buf.resize(cols, 0.0);
                }
                let bufs = SharedRows(self.rows_f32.as_mut_ptr());
                self.pool.run(&|s| {
                    // SAFETY: share `s` alone uses scratch row `s`.
                    let buf = unsafe { bufs.row(s) };
                    for r in share(rows, s, shares) {
                        w.dequantize_row(r, buf);
                        for t in 0..n {
                            let v = dot_f32(buf, &x[t * cols..(t + 1) * cols]);
                            // SAFETY: row r belongs to this share.
                            unsafe { out_ptr.write(t * rows + r, v, accumulate) };
                        }
                    }
                });
            }
            CpuWeight::Packed(packed, _) => {
                let (rows, blocks, cols) = (packed.rows, packed.blocks, packed.cols());
                self.xq.resize(n * blocks, BlockQ8::default());
                for t in 0..n {
                    quantize_activations(packed.ty, &x[t * cols..(t + 1) * cols], &mut self.xq[t * blocks..(t + 1) * blocks]);
                }
                let xq = &self.xq;
                let kernel = kernel_for(packed.ty);
                let groups = packed.groups();
                self.pool.run(&|s| {
                    let mut res = [[0f32; ROWS]; TOKENS];
                    for g in share(groups, s, shares) {
                        let lanes = (rows - g * ROWS).min(ROWS);
                        for t0 in (0..n).step_by(TOKENS) {
                            let tokens = (n - t0).min(TOKENS);
                            kernel(packed.group(g), &xq[t0 * blocks..], blocks, tokens, &mut res);
                            for (t, r) in res.iter().enumerate().take(tokens) {
                                for (lane, &v) in r.iter().enumerate().take(lanes) {
                                    // SAFETY: the rows of group g belong to this share.
                                    unsafe { out_ptr.write((t0 + t) * rows + g * ROWS + lane, v, accumulate) };
                                }
                            }
                        }
                    }
                });
            }
        }
    }

    /// `out (+)= x / rms(x) * weight` for each group of `weight.cols()` values of `x` (the rows
    /// to normalise, whole).
    pub fn rms_norm(&mut self, x: &[f32], weight: &CpuWeight, eps: f32, accumulate: bool, out: &mut [f32]) {
        let cols = weight.cols();
        self.norm_w.resize(cols, 0.0);
        weight.dequantize_row(0, &mut self.norm_w);
        for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
            let sum: f64 = xr.iter().map(|&v| (v as f64) * (v as f64)).sum();
            let scale = 1.0 / ((sum / cols as f64) as f32 + eps).sqrt();
            for ((o, &v), &g) in or.iter_mut().zip(xr).zip(&self.norm_w) {
                *o = if accumulate { *o + v * scale * g } else { v * scale * g };
            }
        }
    }

    /// `x[t] += bias` for the first `n` rows of `x`.
    pub fn add_bias(&mut self, bias: &CpuWeight, n: usize, x: &mut [f32]) {
        let cols = bias.cols();
        self.norm_w.resize(cols, 0.0);
        bias.dequantize_row(0, &mut self.norm_w);
        for row in x.chunks_exact_mut(cols).take(n) {
            row.iter_mut().zip(&self.norm_w).for_each(|(v, b)| *v += b);
        }
    }

    /// `out[i] = table[tokens[i]] * scale`, with the file's exact values: a table whose packing
    /// rounded its scales is read from the file (one row a token), or from its packed copy if the
    /// file changed since.
    pub fn embed(&mut self, table: &CpuWeight, tokens: &[u32], scale: f32, out: &mut [f32]) {
        for (&t, o) in tokens.iter().zip(out.chunks_exact_mut(table.cols())) {
            let exact = match table {
                CpuWeight::Packed(packed, Some(file)) => file.dequantize_row(packed, t as usize, &mut self.raw_row, o),
                _ => false,
            };
            if !exact {
                table.dequantize_row(t as usize, o);
            }
            if scale != 1.0 {
                o.iter_mut().for_each(|v| *v *= scale);
            }
        }
    }

    /// `out = act(gate) * up` element-wise.
    pub fn glu(gate: &[f32], up: &[f32], act: Activation, out: &mut [f32]) {
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *o = act.apply(g) * u;
        }
    }

    /// Rotary position embedding, in place, for `n` rows of `cols` (heads of `head_dim`), each
    /// pair's angle divided by its factor (`factors` is one F32 row of `head_dim / 2`, or none).
    pub fn rope(x: &mut [f32], cols: usize, s: RopeSpec, factors: Option<&CpuWeight>) {
        let (head_dim, half) = (s.head_dim, s.head_dim / 2);
        let theta_scale = s.base.powf(-2.0 / head_dim as f32);
        let mut divisors = [1f32; 256];
        if let Some(f) = factors {
            f.dequantize_row(0, &mut divisors[..half]);
        }
        let mut cs = [(0f32, 0f32); 256];
        for (t, row) in x.chunks_exact_mut(cols).take(s.n).enumerate() {
            let mut theta = (s.pos + t) as f32;
            for (c, &d) in cs.iter_mut().zip(&divisors).take(half) {
                let (sin, cos) = (theta / d).sin_cos();
                *c = (cos, sin);
                theta *= theta_scale;
            }
            for head in row.chunks_exact_mut(head_dim) {
                for (i, &(cos, sin)) in cs.iter().take(half).enumerate() {
                    let (a, b) = if s.interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * cos - x1 * sin;
                    head[b] = x0 * sin + x1 * cos;
                }
            }
        }
    }

    /// Stores the new keys/values into the caches and runs causal grouped-query attention.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        k_cache: &mut [f32],
        v_cache: &mut [f32],
        shape: AttentionShape,
        out: &mut [f32],
    ) {
        let AttentionShape { heads, kv_heads, head_dim: hd, pos, n, .. } = shape;
        let (qd, kvd) = (heads * hd, kv_heads * hd);
        k_cache[pos * kvd..(pos + n) * kvd].copy_from_slice(&k[..n * kvd]);
        v_cache[pos * kvd..(pos + n) * kvd].copy_from_slice(&v[..n * kvd]);
        let (k_cache, v_cache) = (&*k_cache, &*v_cache);
        let group = heads / kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let shares = self.pool.threads();
        for s in &mut self.scores {
            s.resize(pos + n, 0.0);
        }
        let scores = SharedRows(self.scores.as_mut_ptr());
        let out_ptr = SharedMut(out.as_mut_ptr());
        self.pool.run(&|s| {
            // SAFETY: share `s` alone uses scratch row `s`.
            let sc = unsafe { scores.row(s) };
            for item in share(n * heads, s, shares) {
                let (t, h) = (item / heads, item % heads);
                let first = shape.first_seen(pos + t);
                let len = pos + t + 1 - first;
                let qh = &q[t * qd + h * hd..t * qd + (h + 1) * hd];
                let kvo = first * kvd + (h / group) * hd;
                let o = &mut [0f32; 256][..hd];
                attend(qh, &k_cache[kvo..], &v_cache[kvo..], kvd, len, scale, &mut sc[..len], o);
                for (d, &a) in o.iter().enumerate() {
                    // SAFETY: (t, h) belongs to this share.
                    unsafe { out_ptr.write(t * qd + h * hd + d, a, false) };
                }
            }
        });
    }

    /// Repetition penalty on the distinct tokens of `tokens`.
    pub fn penalize(&mut self, logits: &mut [f32], tokens: &[u32], penalty: f32) {
        crate::compute::distinct_below(tokens, logits.len(), &mut self.dedup);
        for &t in &self.dedup {
            let l = &mut logits[t as usize];
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// Sets to -infinity every value of `row` whose bit in `allowed` is clear (or past its end).
pub fn mask(row: &mut [f32], allowed: &[u32]) {
    for (i, v) in row.iter_mut().enumerate() {
        if allowed.get(i / 32).is_none_or(|w| w >> (i % 32) & 1 == 0) {
            *v = f32::NEG_INFINITY;
        }
    }
}

/// The `k` largest values of `row` as (index, value), best first, ties to the lower index.
pub fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let k = k.clamp(1, row.len().max(1));
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &v) in row.iter().enumerate() {
        if best.len() == k && v <= best[k - 1].1 {
            continue;
        }
        let at = best.partition_point(|&(_, b)| b >= v);
        best.insert(at, (i as u32, v));
        best.truncate(k);
    }
    best
}

#[derive(Clone, Copy)]
struct SharedRows(*mut Vec<f32>);
// SAFETY: each share touches only its own scratch row.
unsafe impl Send for SharedRows {}
unsafe impl Sync for SharedRows {}

impl SharedRows {
    /// # Safety
    /// `s` is in bounds and only one share uses row `s`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, s: usize) -> &mut Vec<f32> {
        &mut *self.0.add(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_sorted_and_prefers_lower_ids_on_ties() {
        let row = [1.0, 5.0, 3.0, 5.0, -2.0, 4.0];
        assert_eq!(top_k(&row, 3), vec![(1, 5.0), (3, 5.0), (5, 4.0)]);
        assert_eq!(top_k(&row, 1), vec![(1, 5.0)]);
    }

    #[test]
    fn threaded_matmul_equals_single_threaded() {
        let (rows, cols, n) = (37, 64, 3);
        let data: Vec<u8> = (0..rows * cols / 32 * 20).map(|i| (i * 13 % 251) as u8 & 0x7F).collect();
        let w =
            CpuWeight::Packed(Arc::new(PackedWeight::new(WeightView { ty: WeightType::Q4_1, rows, cols, data: &data })), None);
        let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.1).cos()).collect();
        let mut one = vec![0f32; n * rows];
        let mut two = vec![0f32; n * rows];
        CpuKernels::new(1).matmul(&w, &x, n, &mut one, false);
        CpuKernels::new(2).matmul(&w, &x, n, &mut two, false);
        assert_eq!(one, two);
    }
}
