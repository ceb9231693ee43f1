//! Quantised weights repacked once, eight rows interleaved, for the mat-vec/mat-mul kernels.
//!
//! A GGUF row keeps each 32-element block's scale next to its quants, so a row-at-a-time dot
//! product spends most of its time on per-block scalar work (scale conversion, horizontal sums).
//! Interleaving eight rows puts, for every block, the eight scales in one vector and the eight
//! rows' quants side by side: one integer multiply-add then serves eight rows, eight f16 scales
//! convert in one instruction, and the sums land in one vector of eight outputs, with no
//! horizontal reduction. The layout holds the same bytes as the file (it is a permutation), so
//! packing costs memory equal to the packed weights, once per session.
//!
//! Layout of one group of [`ROWS`] rows, block after block:
//! - Q4_0/Q4_1: 8 f16 scales `d`, 8 f16 minimums `m` (Q4_0 stores `-8d`), then 4 vectors of
//!   32 bytes; lane `r` (4 bytes) of vector `k` holds row `r`'s quant bytes `4k..4k+4`, whose low
//!   nibbles are columns `4k..4k+4` and high nibbles columns `16+4k..16+4k+4`.
//! - Q8_0: 8 f16 scales, then 8 vectors of 32 bytes; lane `r` of vector `k` holds row `r`'s
//!   quants `4k..4k+4`.

use half::f16;

use super::cpu::WeightView;
use super::quant::{f16_at, BlockQ8, WeightType, Q4_0_BYTES, Q4_1_BYTES, Q8_0_BYTES, QK};

/// Rows interleaved in one group.
pub const ROWS: usize = 8;
/// Tokens one kernel call multiplies at most (they share the unpacked weights).
pub const TOKENS: usize = 4;

/// Results of one kernel call: `[token][row of the group]`.
pub type GroupOut = [[f32; ROWS]; TOKENS];

/// A kernel multiplying one packed group (`blocks` blocks) with `tokens` (1..=[`TOKENS`])
/// consecutive rows of quantised activations, each `blocks` long.
pub type GroupKernel = fn(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut);

/// Bytes of one packed Q4_0/Q4_1 block of a group: 8 scales, 8 minimums, 8 × 16 quant bytes.
pub const Q4_GROUP_BLOCK: usize = 4 * ROWS + 16 * ROWS;
/// Bytes of one packed Q8_0 block of a group: 8 scales, 8 × 32 quant bytes.
pub const Q8_GROUP_BLOCK: usize = 2 * ROWS + QK * ROWS;

/// Bytes of one packed block of a group.
pub fn block_bytes(ty: WeightType) -> usize {
    match ty {
        WeightType::Q4_0 | WeightType::Q4_1 => Q4_GROUP_BLOCK,
        WeightType::Q8_0 => Q8_GROUP_BLOCK,
        WeightType::F32 | WeightType::F16 => unreachable!("float weights are not packed"),
    }
}

/// A quantised matrix in the interleaved layout.
pub struct PackedWeight {
    /// Storage type of the source.
    pub ty: WeightType,
    /// Rows (output features).
    pub rows: usize,
    /// Blocks per row.
    pub blocks: usize,
    data: Vec<u8>,
}

impl PackedWeight {
    /// Bytes that packing `w` takes.
    pub fn size_of(w: &WeightView) -> usize {
        w.rows.div_ceil(ROWS) * (w.cols / QK) * block_bytes(w.ty)
    }

    /// Repacks `w` (a quantised weight); a last partial group is padded with zero rows.
    pub fn new(w: WeightView) -> Self {
        let blocks = w.cols / QK;
        let bb = block_bytes(w.ty);
        let mut data = vec![0u8; Self::size_of(&w)];
        let (src_block, qs_at, quant_bytes) = match w.ty {
            WeightType::Q4_0 => (Q4_0_BYTES, 2, QK / 2),
            WeightType::Q4_1 => (Q4_1_BYTES, 4, QK / 2),
            _ => (Q8_0_BYTES, 2, QK),
        };
        let scales = if quant_bytes == 16 { 4 * ROWS } else { 2 * ROWS };
        for r in 0..w.rows {
            let (g, lane) = (r / ROWS, r % ROWS);
            let row = w.row(r);
            for b in 0..blocks {
                let src = &row[b * src_block..(b + 1) * src_block];
                let dst = &mut data[(g * blocks + b) * bb..(g * blocks + b + 1) * bb];
                dst[2 * lane..2 * lane + 2].copy_from_slice(&src[..2]);
                if quant_bytes == 16 {
                    let m = if w.ty == WeightType::Q4_1 {
                        [src[2], src[3]]
                    } else {
                        f16::from_f32(-8.0 * f16_at(src, 0)).to_le_bytes()
                    };
                    dst[2 * ROWS + 2 * lane..2 * ROWS + 2 * lane + 2].copy_from_slice(&m);
                }
                for k in 0..quant_bytes / 4 {
                    let at = scales + 32 * k + 4 * lane;
                    dst[at..at + 4].copy_from_slice(&src[qs_at + 4 * k..qs_at + 4 * k + 4]);
                }
            }
        }
        Self { ty: w.ty, rows: w.rows, blocks, data }
    }

    /// Number of row groups.
    pub fn groups(&self) -> usize {
        self.rows.div_ceil(ROWS)
    }

    /// The bytes of group `g`.
    pub fn group(&self, g: usize) -> &[u8] {
        let len = self.blocks * block_bytes(self.ty);
        &self.data[g * len..(g + 1) * len]
    }
}

/// The fastest group kernel this CPU supports for `ty` (a quantised type).
pub fn kernel_for(ty: WeightType) -> GroupKernel {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx2() {
        return match ty {
            WeightType::Q8_0 => super::simd::group_q8,
            _ => super::simd::group_q4,
        };
    }
    match ty {
        WeightType::Q8_0 => group_q8_portable,
        _ => group_q4_portable,
    }
}

/// Portable Q4_0/Q4_1 group kernel.
pub fn group_q4_portable(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    portable(group, x, blocks, tokens, out, Q4_GROUP_BLOCK, |blk, lane, y| {
        let mut dot = 0i32;
        for k in 0..4 {
            for j in 0..4 {
                let q = blk[4 * ROWS + 32 * k + 4 * lane + j];
                dot += (q & 0x0F) as i32 * y.qs[4 * k + j] as i32 + (q >> 4) as i32 * y.qs[16 + 4 * k + j] as i32;
            }
        }
        f16_at(blk, 2 * lane) * y.d * dot as f32 + f16_at(blk, 2 * ROWS + 2 * lane) * y.s
    });
}

/// Portable Q8_0 group kernel.
pub fn group_q8_portable(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    portable(group, x, blocks, tokens, out, Q8_GROUP_BLOCK, |blk, lane, y| {
        let mut dot = 0i32;
        for k in 0..8 {
            for j in 0..4 {
                dot += blk[2 * ROWS + 32 * k + 4 * lane + j] as i8 as i32 * y.qs[4 * k + j] as i32;
            }
        }
        f16_at(blk, 2 * lane) * y.d * dot as f32
    });
}

fn portable(
    group: &[u8],
    x: &[BlockQ8],
    blocks: usize,
    tokens: usize,
    out: &mut GroupOut,
    bb: usize,
    block_dot: impl Fn(&[u8], usize, &BlockQ8) -> f32,
) {
    for (t, o) in out.iter_mut().enumerate().take(tokens) {
        for (lane, v) in o.iter_mut().enumerate() {
            *v = (0..blocks).map(|b| block_dot(&group[b * bb..(b + 1) * bb], lane, &x[t * blocks + b])).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::quant::{dequantize_row, quantize_row_q8};
    use super::*;

    /// Random blocks with sane scales, `rows` rows of `cols`.
    fn random_weight(ty: WeightType, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        let mut rnd = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as u8
        };
        let rb = ty.row_bytes(cols).expect("whole blocks");
        let block = rb / (cols / QK);
        let mut w: Vec<u8> = (0..rows * rb).map(|_| rnd()).collect();
        for (i, b) in w.chunks_exact_mut(block).enumerate() {
            b[..2].copy_from_slice(&f16::from_f32(0.01 + (i % 7) as f32 * 0.003).to_le_bytes());
            if ty == WeightType::Q4_1 {
                b[2..4].copy_from_slice(&f16::from_f32(-0.1 + (i % 5) as f32 * 0.01).to_le_bytes());
            }
        }
        w
    }

    /// Every kernel (SIMD and portable) matches the float dot product of the dequantised
    /// weights with the activations, for row counts that do not fill the last group.
    #[test]
    fn kernels_match_dequantised_reference() {
        let (rows, cols) = (19, 96);
        let blocks = cols / QK;
        for ty in [WeightType::Q4_0, WeightType::Q4_1, WeightType::Q8_0] {
            let data = random_weight(ty, rows, cols, 11);
            let view = WeightView { ty, rows, cols, data: &data };
            let packed = PackedWeight::new(view);
            let x: Vec<f32> = (0..TOKENS * cols).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.21).collect();
            let mut xq = vec![BlockQ8::default(); TOKENS * blocks];
            for t in 0..TOKENS {
                quantize_row_q8(&x[t * cols..(t + 1) * cols], &mut xq[t * blocks..(t + 1) * blocks]);
            }
            let portable: GroupKernel = if ty == WeightType::Q8_0 { group_q8_portable } else { group_q4_portable };
            for kernel in [kernel_for(ty), portable] {
                for tokens in 1..=TOKENS {
                    for g in 0..packed.groups() {
                        let mut out = [[0f32; ROWS]; TOKENS];
                        kernel(packed.group(g), &xq, blocks, tokens, &mut out);
                        for (t, o) in out.iter().enumerate().take(tokens) {
                            for (lane, &got) in o.iter().enumerate().take(rows - (g * ROWS).min(rows)) {
                                let mut w = vec![0f32; cols];
                                dequantize_row(ty, view.row(g * ROWS + lane), &mut w);
                                let exact: f32 = w.iter().zip(&x[t * cols..(t + 1) * cols]).map(|(a, b)| a * b).sum();
                                let tol = 0.02 * w.iter().map(|v| v.abs()).sum::<f32>();
                                assert!((exact - got).abs() <= tol, "{ty:?} row {} token {t}: {exact} vs {got}", g * ROWS + lane);
                            }
                        }
                    }
                }
            }
        }
    }
}
