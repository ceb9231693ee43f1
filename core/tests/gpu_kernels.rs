//! Every GPU kernel against the CPU backend, on fresh random inputs of several shapes (including
//! ones that are not multiples of any workgroup size), on whatever adapter wgpu finds — Mesa's
//! lavapipe in CI. Errors are measured relative to the largest CPU value of each result.

use std::sync::Arc;

use half::f16;
use murmur_core::compute::gpu::{AdapterPolicy, GpuOptions};
use murmur_core::compute::quant::dequantize_row;
use murmur_core::compute::{
    ActId, Activation, AttentionIo, AttentionShape, Backend, CpuBackend, CpuWeights, GpuBackend, ModelFile, NormSpec, RopeSpec,
    WeightId, WeightSpec, WeightType,
};

/// xorshift64*: fresh but reproducible inputs (the seed is printed on failure).
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
        eprintln!("seed {seed}");
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [lo, hi).
    fn f(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A model file made in memory: tensors appended one after another.
struct FileBuilder {
    bytes: Vec<u8>,
    rng: Rng,
}

impl FileBuilder {
    fn new() -> Self {
        Self { bytes: Vec::new(), rng: Rng::new() }
    }

    /// Random weights of `ty`, laid out as in a GGUF file: random bytes with sane f16 scales
    /// (K-quant super-block scales smaller, as they multiply 6-bit sub-block scales).
    fn weight(&mut self, ty: WeightType, rows: usize, cols: usize) -> WeightSpec {
        let offset = self.bytes.len();
        let r = &mut self.rng;
        let (bytes, elems) = ty.block();
        for _ in 0..rows * cols / elems {
            match ty {
                WeightType::F32 => self.bytes.extend(r.f(-1.0, 1.0).to_le_bytes()),
                WeightType::F16 => self.bytes.extend(f16::from_f32(r.f(-1.0, 1.0)).to_le_bytes()),
                WeightType::BF16 => self.bytes.extend(half::bf16::from_f32(r.f(-1.0, 1.0)).to_le_bytes()),
                _ => {
                    let at = self.bytes.len();
                    self.bytes.extend((0..bytes).map(|_| r.byte()));
                    let unit = if elems == 32 { 1.0 } else { 1.0 / 32.0 };
                    for &f in ty.f16_fields() {
                        self.bytes[at + f..at + f + 2].copy_from_slice(&f16::from_f32(r.f(0.002, 0.05) * unit).to_le_bytes());
                    }
                }
            }
        }
        WeightSpec { ty, rows, cols, offset }
    }

    /// One F32 row of random values in `[lo, hi)`.
    fn row(&mut self, cols: usize, lo: f32, hi: f32) -> WeightSpec {
        let offset = self.bytes.len();
        for _ in 0..cols {
            let v = self.rng.f(lo, hi);
            self.bytes.extend(v.to_le_bytes());
        }
        WeightSpec { ty: WeightType::F32, rows: 1, cols, offset }
    }

    /// The largest magnitude of weight `w`'s elements.
    fn max_weight(&self, w: &WeightSpec) -> f32 {
        let mut row = vec![0f32; w.cols];
        let data = &self.bytes[w.offset..w.offset + w.len()];
        let rb = data.len() / w.rows;
        (0..w.rows).fold(0f32, |m, r| {
            dequantize_row(w.ty, &data[r * rb..(r + 1) * rb], &mut row);
            row.iter().fold(m, |m, v| m.max(v.abs()))
        })
    }

    fn finish(self) -> Arc<ModelFile> {
        Arc::new(ModelFile::from_bytes(self.bytes))
    }
}

/// The same op sequence on both backends.
struct Pair {
    cpu: CpuBackend,
    gpu: GpuBackend,
}

impl Pair {
    fn new(model: Arc<ModelFile>, max_binding: Option<u64>) -> Self {
        let gpu = GpuBackend::new(Arc::clone(&model), GpuOptions { max_binding, ..GpuOptions::new(AdapterPolicy::Any) })
            .expect("a GPU adapter (lavapipe: apt install mesa-vulkan-drivers)");
        Self { cpu: CpuBackend::new(Arc::new(CpuWeights::new(model)), 2), gpu }
    }

    fn both<T>(&mut self, mut f: impl FnMut(&mut dyn Backend) -> T) -> (T, T) {
        (f(&mut self.cpu), f(&mut self.gpu))
    }

    fn weight(&mut self, spec: WeightSpec) -> WeightId {
        let (c, g) = self.both(|b| b.weight(spec).unwrap());
        assert_eq!(c, g, "both backends number weights alike");
        c
    }

    fn act(&mut self, rows: usize, cols: usize) -> ActId {
        let (c, g) = self.both(|b| b.activation(rows, cols).unwrap());
        assert_eq!(c, g, "both backends number activations alike");
        c
    }

    /// An activation filled with the rows of an f32 table.
    fn input(&mut self, table: WeightSpec) -> ActId {
        self.input_scaled(table, 1.0)
    }

    /// An activation filled with the rows of an f32 table times `scale`.
    fn input_scaled(&mut self, table: WeightSpec, scale: f32) -> ActId {
        let (w, x) = (self.weight(table), self.act(table.rows, table.cols));
        let tokens: Vec<u32> = (0..table.rows as u32).collect();
        self.both(|b| b.embed(w, &tokens, scale, x).unwrap());
        x
    }

    /// Reads `x` from both and checks they agree within `rel` of the largest CPU magnitude.
    fn check(&mut self, what: &str, x: ActId, rel: f32) -> Vec<f32> {
        self.check_scaled(what, x, rel, 1e-6)
    }

    /// Like [`Pair::check`], with the magnitude taken as at least `floor` (for sums whose terms
    /// cancel: the error scales with the terms, not the sum).
    fn check_scaled(&mut self, what: &str, x: ActId, rel: f32, floor: f32) -> Vec<f32> {
        let (c, g) = self.both(|b| b.read(x).unwrap());
        assert_eq!(c.len(), g.len(), "{what}: lengths");
        let scale = c.iter().fold(0f32, |m, v| m.max(v.abs())).max(floor);
        let (at, err) =
            c.iter()
                .zip(&g)
                .map(|(a, b)| (a - b).abs())
                .enumerate()
                .fold((0, 0f32), |m, (i, e)| if e > m.1 { (i, e) } else { m });
        assert!(err <= rel * scale, "{what}: element {at}: cpu {} gpu {} (error {err}, bound {})", c[at], g[at], rel * scale);
        c
    }
}

/// Every weight type; the quantised ones are those with a block family.
const ALL: [WeightType; 15] = WeightType::ALL;

fn quantised(ty: WeightType) -> bool {
    ty.family().is_some()
}

/// Mat-vec and mat-mul, all weight types, tokens 1 (mat-vec kernel), 3, 11 (past one tile of
/// eight), and 33 and 40 (the tiled kernel, past one tile of 32 tokens and with part-filled tiles
/// of rows), with and without accumulation; widths rounded up to whole blocks (256 for
/// the K-quants). The CPU quantises activations to 8 bits per block (as llama.cpp does) and
/// the GPU keeps them in f32: they agree to 2 % for quantised weights and 1e-5 for float ones,
/// of the larger of the result and the typical size of a dot product of that width (¼ √cols
/// times the largest weight).
#[test]
fn matmul_matches_the_cpu() {
    let shapes: [(usize, usize, usize); 8] =
        [(1, 32, 1), (37, 64, 3), (300, 576, 1), (129, 96, 11), (70, 1536, 2), (2100, 64, 1), (45, 96, 40), (100, 288, 33)];
    let mut f = FileBuilder::new();
    let mut cases = Vec::new();
    for ty in ALL {
        for &(rows, cols, n) in &shapes {
            let cols = cols.next_multiple_of(ty.block().1);
            let w = f.weight(ty, rows, cols);
            cases.push((w, f.weight(WeightType::F32, n, cols), n, f.max_weight(&w)));
        }
    }
    let mut p = Pair::new(f.finish(), None);
    for (w, x, n, w_max) in cases {
        let (wid, xa, out) = (p.weight(w), p.input(x), p.act(n, w.rows));
        let rel = if quantised(w.ty) { 2e-2 } else { 1e-5 };
        let what = format!("{:?} {}x{} times {n}", w.ty, w.rows, w.cols);
        let floor = 0.25 * w_max * (w.cols as f32).sqrt();
        p.both(|b| b.matmul(wid, xa, n, out, false).unwrap());
        let first = p.check_scaled(&what, out, rel, floor);
        p.both(|b| b.matmul(wid, xa, n, out, true).unwrap());
        // Accumulating doubles the result, and the activations' rounding error with it.
        let twice = p.check_scaled(&format!("{what}, accumulated"), out, rel, 2.0 * floor);
        assert!(first.iter().zip(&twice).all(|(a, b)| (2.0 * a - b).abs() <= 1e-4 * a.abs().max(1.0)), "{what}: accumulate adds");
    }
}

/// A bias added to the first rows, in place: exact up to rounding.
#[test]
fn add_bias_matches_the_cpu() {
    let mut f = FileBuilder::new();
    let cases: Vec<_> = [(1, 896), (5, 128), (3, 1000)]
        .iter()
        .map(|&(n, cols)| (f.weight(WeightType::F32, n + 2, cols), f.weight(WeightType::F32, 1, cols), n))
        .collect();
    let mut p = Pair::new(f.finish(), None);
    for (x, bias, n) in cases {
        let (xa, b) = (p.input(x), p.weight(bias));
        let before = p.cpu.read(xa).unwrap();
        p.both(|be| be.add_bias(xa, b, n).unwrap());
        let got = p.check(&format!("bias on {n} of {} rows of {}", x.rows, x.cols), xa, 1e-6);
        assert_eq!(got[n * x.cols..], before[n * x.cols..], "rows past n are left alone");
        assert_ne!(got[..x.cols], before[..x.cols], "the bias was added");
    }
}

/// Embedding rows of every type, repeated and out-of-order tokens, and scaled as gemma3 scales
/// them: exact up to rounding.
#[test]
fn embed_matches_the_cpu() {
    let mut f = FileBuilder::new();
    let tables: Vec<_> = ALL.iter().map(|&ty| f.weight(ty, 50, 96usize.next_multiple_of(ty.block().1))).collect();
    let mut p = Pair::new(f.finish(), None);
    for t in tables {
        let (w, out) = (p.weight(t), p.act(6, t.cols));
        let scale = if t.ty == WeightType::Q8_0 { 25.3 } else { 1.0 };
        p.both(|b| b.embed(w, &[7, 0, 49, 7, 13, 2], scale, out).unwrap());
        p.check(&format!("{:?} embedding ×{scale}", t.ty), out, 1e-6);
    }
}

/// RMSNorm over widths that are and are not multiples of the 256-thread workgroup, per head
/// (a weight narrower than the row: gemma3's and qwen3's q/k norms), and added to its output
/// (gemma3's post-norms): 1e-5.
#[test]
fn rms_norm_matches_the_cpu() {
    let mut f = FileBuilder::new();
    let cases: Vec<_> =
        [(1, 576, 576, false), (3, 100, 100, false), (2, 1000, 1000, true), (3, 1024, 256, false), (2, 640, 640, true)]
            .iter()
            .map(|&(n, cols, group, acc)| {
                let (x, out) = (f.weight(WeightType::F32, n, cols), f.weight(WeightType::F32, n, cols));
                (x, out, f.weight(WeightType::F32, 1, group), n, acc)
            })
            .collect();
    let mut p = Pair::new(f.finish(), None);
    for (x, out, w, n, accumulate) in cases {
        let (xa, wid, out) = (p.input(x), p.weight(w), p.input(out));
        // Over fewer rows than the tensor has, so the rest must stay as they were.
        let rows = n.max(2) - 1;
        p.both(|b| b.rms_norm(xa, wid, NormSpec { eps: 1e-5, rows, accumulate }, out).unwrap());
        p.check(&format!("rms-norm {rows}x{} by {}, accumulate {accumulate}", x.cols, w.cols), out, 1e-5);
    }
}

/// Rotary embedding, both pair layouts, at the start and deep into the context (where the
/// angle's own f32 rounding dominates), with and without Llama 3's frequency divisors: 2e-4.
#[test]
fn rope_matches_the_cpu() {
    let mut f = FileBuilder::new();
    let cases: Vec<_> = [
        (64, 576, 3, 0, true, false),
        (32, 96, 5, 1000, false, false),
        (64, 192, 1, 2047, true, false),
        (64, 256, 4, 7, true, true),
        (128, 512, 2, 1500, false, true),
    ]
    .iter()
    .map(|&(hd, cols, n, pos, inter, scaled)| {
        let factors = scaled.then(|| f.row(hd / 2, 1.0, 8.0));
        (f.weight(WeightType::F32, n, cols), hd, pos, inter, factors)
    })
    .collect();
    let mut p = Pair::new(f.finish(), None);
    for (x, head_dim, pos, interleaved, factors) in cases {
        let xa = p.input(x);
        let factors = factors.map(|w| p.weight(w));
        let spec = RopeSpec { head_dim, pos, n: x.rows, base: 10_000.0, interleaved, factors };
        p.both(|b| b.rope(xa, spec).unwrap());
        p.check(&format!("rope head {head_dim} at {pos}, factors {}", factors.is_some()), xa, 2e-4);
    }
}

/// Grouped-query attention over a cache filled step by step (a prompt, then single tokens),
/// across the 64-position chunks of the GPU kernel, over the whole past or a sliding window
/// (gemma3's, with its 256-wide heads): 1e-4.
#[test]
fn attention_matches_the_cpu() {
    let cases = [
        (9, 3, 64, vec![5, 1, 70, 1], None),
        (4, 4, 32, vec![1, 130], None),
        (2, 1, 80, vec![3], None),
        (4, 1, 256, vec![40, 1, 30, 1], Some(48)),
        (2, 2, 64, vec![100, 1], Some(1)),
        // Past 64 spans of 32 positions, whose merge weights are not all kept in shared memory.
        (2, 1, 32, vec![2080, 1], None),
    ];
    for (heads, kv_heads, hd, steps, window) in cases {
        let (qd, kvd) = (heads * hd, kv_heads * hd);
        let mut f = FileBuilder::new();
        let inputs: Vec<_> = steps
            .iter()
            .map(|&n| (f.weight(WeightType::F32, n, qd), f.weight(WeightType::F32, n, kvd), f.weight(WeightType::F32, n, kvd), n))
            .collect();
        let mut p = Pair::new(f.finish(), None);
        let total: usize = steps.iter().sum();
        let (kc, vc) = (p.act(total, kvd), p.act(total, kvd));
        let mut pos = 0;
        for (q, k, v, n) in inputs {
            let (q, k, v, out) = (p.input(q), p.input(k), p.input(v), p.act(n, qd));
            let io = AttentionIo { q, k, v, k_cache: kc, v_cache: vc, out };
            let shape = AttentionShape { heads, kv_heads, head_dim: hd, pos, n, window };
            p.both(|b| b.attention(io, shape).unwrap());
            p.check(&format!("attention {heads}/{kv_heads} heads of {hd}, {n} at {pos}, window {window:?}"), out, 1e-4);
            pos += n;
        }
        p.check("key cache", kc, 0.0);
        p.check("value cache", vc, 0.0);
    }
}

/// The gated products (SiLU, and GELU's tanh form over a range that reaches where tanh
/// saturates), row copies and the repetition penalty (repeated and out-of-range tokens).
#[test]
fn elementwise_ops_match_the_cpu() {
    let mut f = FileBuilder::new();
    let (g, u, l) = (f.weight(WeightType::F32, 3, 1000), f.weight(WeightType::F32, 3, 1000), f.weight(WeightType::F32, 2, 300));
    let mut p = Pair::new(f.finish(), None);
    let (ga, ua, la, out, row) = (p.input_scaled(g, 12.0), p.input(u), p.input(l), p.act(3, 1000), p.act(1, 1000));
    for act in [Activation::Silu, Activation::GeluTanh] {
        p.both(|b| b.glu(ga, ua, act, 2, out).unwrap());
        p.check(&format!("{act:?} glu"), out, 1e-6);
    }
    p.both(|b| b.copy_row(ga, 2, row, 0).unwrap());
    p.check("copy-row", row, 0.0);
    p.both(|b| b.penalize(la, 1, &[5, 299, 5, 300, 77, 0], 1.3).unwrap());
    p.check("penalize", la, 1e-7);
}

/// A grammar's mask: only the allowed tokens of the row survive, those past a short bitset are
/// masked, and top-k then returns allowed tokens only.
#[test]
fn the_token_mask_matches_the_cpu() {
    let mut f = FileBuilder::new();
    let l = f.weight(WeightType::F32, 2, 49_152);
    let mut p = Pair::new(f.finish(), None);
    let la = p.input(l);
    // Tokens 7, 40 and 1000..1010, in a bitset that stops short of the row's end.
    let mut allowed = vec![0u32; 40];
    for t in [7usize, 40].into_iter().chain(1000..1010) {
        allowed[t / 32] |= 1 << (t % 32);
    }
    p.both(|b| b.mask(la, 1, &allowed).unwrap());
    let (c, g) = p.both(|b| b.read(la).unwrap());
    assert_eq!(c, g, "the masked logits are the same, bit for bit");
    assert_eq!(c[49_152..].iter().filter(|v| v.is_finite()).count(), 12, "the allowed tokens keep their logits");
    assert!(c[..49_152].iter().all(|v| v.is_finite()), "the other row is untouched");
    let (c, g) = p.both(|b| b.top_k(la, 1, 20).unwrap());
    assert_eq!(c, g);
    let ids: Vec<u32> = c.iter().take(12).map(|&(id, _)| id).collect();
    assert!(ids.iter().all(|&id| id == 7 || id == 40 || (1000..1010).contains(&id)), "{ids:?}");
    assert!(c[12..].iter().all(|&(_, v)| v == f32::NEG_INFINITY), "only 12 tokens are allowed");
}

/// Top-k reads back the same ids and values, best first with ties to the lower id, over a
/// vocabulary-sized row (several segments and merge rounds).
#[test]
fn top_k_matches_the_cpu() {
    let mut f = FileBuilder::new();
    let row = f.weight(WeightType::F32, 2, 49_152);
    let mut p = Pair::new(f.finish(), None);
    let x = p.input(row);
    // Ties: copy one row's best value elsewhere.
    p.both(|b| b.penalize(x, 1, &[3, 40_000], 1.0).unwrap());
    for k in [1, 5, 40, 256] {
        let (c, g) = p.both(|b| b.top_k(x, 1, k).unwrap());
        assert_eq!(c, g, "top-{k}");
        assert_eq!(c.len(), k);
    }
}

/// A weight larger than the (deliberately lowered) binding limit is split into parts of
/// whole rows, and mat-vec, mat-mul and embedding still compute right across the seams.
#[test]
fn weights_past_the_binding_limit_are_split() {
    let mut f = FileBuilder::new();
    let (w, x1, x4) = (f.weight(WeightType::Q8_0, 1000, 64), f.weight(WeightType::F32, 1, 64), f.weight(WeightType::F32, 4, 64));
    let limit = 16_384; // 64 rows of Q8_0 quants per part: 16 parts
    let mut p = Pair::new(f.finish(), Some(limit));
    let (wid, a1, a4, o1, o4, e) = (p.weight(w), p.input(x1), p.input(x4), p.act(1, 1000), p.act(4, 1000), p.act(4, 64));
    p.both(|b| b.matmul(wid, a1, 1, o1, false).unwrap());
    p.check_scaled("split mat-vec", o1, 2e-2, 12.8);
    p.both(|b| b.matmul(wid, a4, 4, o4, false).unwrap());
    p.check_scaled("split mat-mul", o4, 2e-2, 12.8);
    p.both(|b| b.embed(wid, &[0, 63, 64, 999], 1.0, e).unwrap());
    p.check("split embedding", e, 1e-6);
    let too_big = p.gpu.activation(5, 1000).map(|_| ()).unwrap_err().to_string();
    assert!(too_big.contains("larger than the GPU can bind"), "{too_big}");
}

/// The llama block's op runs that the GPU backend fuses — RMSNorm then three mat-muls of the
/// normed rows and the rotations of two of their outputs, SiLU·mul then an accumulating mat-mul
/// of the product, two rotations on their own — give the CPU's results, including the
/// intermediate tensors, in one dispatch each (one token, a tile of five, and 40 tokens in
/// tiles of 32).
#[test]
fn fused_ops_match_the_cpu() {
    for n in [1, 5, 40] {
        let mut f = FileBuilder::new();
        let (x, norm) = (f.weight(WeightType::F32, n, 576), f.weight(WeightType::F32, 1, 576));
        let (wq, wk, wv) =
            (f.weight(WeightType::Q4_1, 576, 576), f.weight(WeightType::Q4_1, 192, 576), f.weight(WeightType::Q4_1, 192, 576));
        let (g, u, down) =
            (f.weight(WeightType::F32, n, 1536), f.weight(WeightType::F32, n, 1536), f.weight(WeightType::Q8_0, 576, 1536));
        let mut p = Pair::new(f.finish(), None);
        let (xa, nw, ga, ua) = (p.input(x), p.weight(norm), p.input(g), p.input(u));
        let (wq, wk, wv, down) = (p.weight(wq), p.weight(wk), p.weight(wv), p.weight(down));
        let (xb, q, k, v, act, out) = (p.act(n, 576), p.act(n, 576), p.act(n, 192), p.act(n, 192), p.act(n, 1536), p.act(n, 576));
        p.both(|b| b.read(xa).map(drop).unwrap());
        let before = p.gpu.stats().dispatches;
        let spec = RopeSpec { head_dim: 64, pos: 17, n, base: 10_000.0, interleaved: true, factors: None };
        p.both(|b| {
            b.rms_norm(xa, nw, NormSpec { eps: 1e-5, rows: n, accumulate: false }, xb).unwrap();
            b.matmul(wq, xb, n, q, false).unwrap();
            b.matmul(wk, xb, n, k, false).unwrap();
            b.matmul(wv, xb, n, v, false).unwrap();
            b.rope(q, spec).unwrap();
            b.rope(k, spec).unwrap();
            b.glu(ga, ua, Activation::Silu, n, act).unwrap();
            b.matmul(down, act, n, out, true).unwrap();
        });
        p.check(&format!("{n}: normed input"), xb, 1e-5);
        assert_eq!(p.gpu.stats().dispatches - before, 2, "norm+q/k/v+rope and silu+down are one dispatch each");
        let floor = 0.25 * 1.2 * 24.0;
        for (name, t) in [("q", q), ("k", k), ("v", v)] {
            p.check_scaled(&format!("{n}: fused {name}"), t, 2e-2, floor);
        }
        p.check(&format!("{n}: silu product"), act, 1e-6);
        p.check_scaled(&format!("{n}: fused down"), out, 2e-2, 0.25 * 6.4 * 39.2);
        let before = p.gpu.stats().dispatches;
        p.both(|b| {
            b.rope(q, spec).unwrap();
            b.rope(k, spec).unwrap();
        });
        p.check_scaled(&format!("{n}: rotated q"), q, 2e-2, floor);
        assert_eq!(p.gpu.stats().dispatches - before, 1, "both rotations are one dispatch");
        p.check_scaled(&format!("{n}: rotated k"), k, 2e-2, floor);
    }
}
