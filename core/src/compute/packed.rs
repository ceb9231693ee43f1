//! Quantised weights repacked once, eight rows interleaved, for the mat-vec/mat-mul kernels.
//!
//! A GGUF row keeps each block's scales next to its quants, so a row-at-a-time dot product
//! spends most of its time on per-block scalar work (scale decoding, horizontal sums).
//! Interleaving eight rows puts, for every 32-element block, the eight rows' scales in one
//! vector and their quants side by side: one integer multiply-add then serves eight rows, eight
//! f16 scales convert in one instruction, and the sums land in one vector of eight outputs, with
//! no horizontal reduction. Every type is packed from its decoded blocks
//! ([`super::quant::decode_block`]) into the layout of its [`Family`]:
//!
//! - Nibbles (Q4_0, Q4_1, Q4_K): 8 f16 scales, 8 f16 minimums, then 4 vectors of 32 bytes;
//!   lane `r` (4 bytes) of vector `k` holds row `r`'s bytes `4k..4k+4`, whose low nibbles are
//!   columns `4k..4k+4` and high nibbles columns `16+4k..16+4k+4`.
//! - Nibbles5 (Q5_0, Q5_1, Q5_K): Nibbles' layout of the low four bits, then one vector whose
//!   lane `r` holds row `r`'s fifth bits as a u32 (bit `j`: column `j`).
//! - Bytes (Q8_0, IQ4_NL, IQ4_XS): 8 f16 scales, then 8 vectors of 32 bytes; lane `r` of
//!   vector `k` holds row `r`'s signed values `4k..4k+4`.
//! - Bytes16 (Q2_K, Q3_K, Q6_K): 8 f16 scales of the first 16 columns, 8 of the last 16, 8 f16
//!   minimums of each half, then the 8 vectors of Bytes.
//!
//! K-quant sub-block scales (products of two ggml factors) are rounded to f16 here.

use half::f16;

use super::cpu::WeightView;
use super::quant::{decode_block, f16_at, Block32, BlockQ8, Family, WeightType, QK};

/// Rows interleaved in one group.
pub const ROWS: usize = 8;
/// Tokens one kernel call multiplies at most (they share the unpacked weights).
pub const TOKENS: usize = 4;

/// Results of one kernel call: `[token][row of the group]`.
pub type GroupOut = [[f32; ROWS]; TOKENS];

/// A kernel multiplying one packed group (`blocks` blocks) with `tokens` (1..=[`TOKENS`])
/// consecutive rows of quantised activations, each `blocks` long.
pub type GroupKernel = fn(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut);

/// Bytes of one packed Nibbles block of a group: 8 scales, 8 minimums, 8 × 16 quant bytes.
pub const Q4_GROUP_BLOCK: usize = 4 * ROWS + 16 * ROWS;
/// Bytes of one packed Nibbles5 block of a group: Nibbles' block and 8 × 4 bytes of fifth bits.
pub const Q5_GROUP_BLOCK: usize = Q4_GROUP_BLOCK + 4 * ROWS;
/// Bytes of one packed Bytes block of a group: 8 scales, 8 × 32 quant bytes.
pub const Q8_GROUP_BLOCK: usize = 2 * ROWS + QK * ROWS;
/// Bytes of one packed Bytes16 block of a group: 2 × 8 scales, 2 × 8 minimums, 8 × 32 quant bytes.
pub const Q8X16_GROUP_BLOCK: usize = 8 * ROWS + QK * ROWS;

/// Bytes of one packed block of a group.
pub fn block_bytes(family: Family) -> usize {
    match family {
        Family::Nibbles => Q4_GROUP_BLOCK,
        Family::Nibbles5 => Q5_GROUP_BLOCK,
        Family::Bytes => Q8_GROUP_BLOCK,
        Family::Bytes16 => Q8X16_GROUP_BLOCK,
    }
}

fn family_of(ty: WeightType) -> Family {
    ty.family().expect("float weights are not packed")
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

/// Writes `v` as f16 at `dst[at..at + 2]`.
fn put_f16(dst: &mut [u8], at: usize, v: f32) {
    dst[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// Writes decoded block `blk` of row lane `lane` into the packed group block `dst`.
fn pack_block(family: Family, blk: &Block32, lane: usize, dst: &mut [u8]) {
    match family {
        Family::Nibbles | Family::Nibbles5 => {
            put_f16(dst, 2 * lane, blk.scale[0]);
            put_f16(dst, 2 * ROWS + 2 * lane, blk.min[0]);
            for (i, byte) in blk.nibble_bytes().into_iter().enumerate() {
                dst[4 * ROWS + 32 * (i / 4) + 4 * lane + i % 4] = byte;
            }
            if family == Family::Nibbles5 {
                let high = blk.q.iter().enumerate().fold(0u32, |h, (j, &q)| h | (((q as u32 >> 4) & 1) << j));
                dst[Q4_GROUP_BLOCK + 4 * lane..Q4_GROUP_BLOCK + 4 * lane + 4].copy_from_slice(&high.to_le_bytes());
            }
        }
        Family::Bytes | Family::Bytes16 => {
            let scales = if family == Family::Bytes {
                put_f16(dst, 2 * lane, blk.scale[0]);
                2 * ROWS
            } else {
                for h in 0..2 {
                    put_f16(dst, 2 * ROWS * h + 2 * lane, blk.scale[h]);
                    put_f16(dst, 2 * ROWS * (2 + h) + 2 * lane, blk.min[h]);
                }
                8 * ROWS
            };
            for i in 0..QK {
                dst[scales + 32 * (i / 4) + 4 * lane + i % 4] = blk.q[i] as u8;
            }
        }
    }
}

impl PackedWeight {
    /// Bytes that packing `w` takes.
    pub fn size_of(w: &WeightView) -> usize {
        w.rows.div_ceil(ROWS) * (w.cols / QK) * block_bytes(family_of(w.ty))
    }

    /// Repacks `w` (a quantised weight); a last partial group is padded with zero rows.
    pub fn new(w: WeightView) -> Self {
        let blocks = w.cols / QK;
        let family = family_of(w.ty);
        let bb = block_bytes(family);
        let mut data = vec![0u8; Self::size_of(&w)];
        for r in 0..w.rows {
            let (g, lane) = (r / ROWS, r % ROWS);
            let row = w.row(r);
            for b in 0..blocks {
                let dst = &mut data[(g * blocks + b) * bb..(g * blocks + b + 1) * bb];
                pack_block(family, &decode_block(w.ty, row, b), lane, dst);
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
        let len = self.blocks * block_bytes(family_of(self.ty));
        &self.data[g * len..(g + 1) * len]
    }
}

/// The fastest group kernel this CPU supports for `ty` (a quantised type).
pub fn kernel_for(ty: WeightType) -> GroupKernel {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx2() {
        return match family_of(ty) {
            Family::Nibbles5 => super::simd::group_q5,
            Family::Bytes => super::simd::group_q8,
            Family::Bytes16 => super::simd::group_q8x16,
            Family::Nibbles => super::simd::group_q4,
        };
    }
    portable_kernel_for(ty)
}

/// The portable group kernel for `ty`.
pub fn portable_kernel_for(ty: WeightType) -> GroupKernel {
    match family_of(ty) {
        Family::Nibbles5 => group_q5_portable,
        Family::Bytes => group_q8_portable,
        Family::Bytes16 => group_q8x16_portable,
        Family::Nibbles => group_q4_portable,
    }
}

/// Portable Nibbles group kernel.
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

/// Portable Nibbles5 group kernel.
pub fn group_q5_portable(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    portable(group, x, blocks, tokens, out, Q5_GROUP_BLOCK, |blk, lane, y| {
        let at = Q4_GROUP_BLOCK + 4 * lane;
        let high = u32::from_le_bytes([blk[at], blk[at + 1], blk[at + 2], blk[at + 3]]);
        let mut dot = 0i32;
        for k in 0..4 {
            for j in 0..4 {
                let q = blk[4 * ROWS + 32 * k + 4 * lane + j];
                let (e0, e1) = (4 * k + j, 16 + 4 * k + j);
                let lo = (q & 0x0F) as i32 | (((high >> e0) & 1) << 4) as i32;
                let hi = (q >> 4) as i32 | (((high >> e1) & 1) << 4) as i32;
                dot += lo * y.qs[e0] as i32 + hi * y.qs[e1] as i32;
            }
        }
        f16_at(blk, 2 * lane) * y.d * dot as f32 + f16_at(blk, 2 * ROWS + 2 * lane) * y.s
    });
}

/// Portable Bytes group kernel.
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

/// Portable Bytes16 group kernel.
pub fn group_q8x16_portable(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    portable(group, x, blocks, tokens, out, Q8X16_GROUP_BLOCK, |blk, lane, y| {
        let mut dots = [0i32; 2];
        for k in 0..8 {
            for j in 0..4 {
                dots[k / 4] += blk[8 * ROWS + 32 * k + 4 * lane + j] as i8 as i32 * y.qs[4 * k + j] as i32;
            }
        }
        (0..2)
            .map(|h| {
                f16_at(blk, 2 * ROWS * h + 2 * lane) * y.d * dots[h] as f32
                    + f16_at(blk, 2 * ROWS * (2 + h) + 2 * lane) * y.half_sums[h]
            })
            .sum()
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
    use super::super::quant::{dequantize_row, quantize_activations};
    use super::*;

    /// Random blocks with sane scales, `rows` rows of `cols`.
    pub(crate) fn random_weight(ty: WeightType, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        let mut rnd = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as u8
        };
        let rb = ty.row_bytes(cols).expect("whole blocks");
        let (block, _) = ty.block();
        let mut w: Vec<u8> = (0..rows * rb).map(|_| rnd()).collect();
        for (i, b) in w.chunks_exact_mut(block).enumerate() {
            for (k, &at) in ty.f16_fields().iter().enumerate() {
                let v = if k == 0 { 0.01 + (i % 7) as f32 * 0.003 } else { 0.002 + (i % 5) as f32 * 0.001 };
                b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
            }
        }
        w
    }

    /// Every kernel (SIMD and portable) of every quantised type matches the float dot product
    /// of the dequantised weights with the activations, for row counts that do not fill the
    /// last group.
    #[test]
    fn kernels_match_dequantised_reference() {
        let (rows, cols) = (19, 512);
        let blocks = cols / QK;
        for ty in WeightType::ALL.into_iter().filter(|t| t.family().is_some()) {
            let data = random_weight(ty, rows, cols, 11);
            let view = WeightView { ty, rows, cols, data: &data };
            let packed = PackedWeight::new(view);
            let x: Vec<f32> = (0..TOKENS * cols).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.21).collect();
            let mut xq = vec![BlockQ8::default(); TOKENS * blocks];
            for t in 0..TOKENS {
                quantize_activations(ty, &x[t * cols..(t + 1) * cols], &mut xq[t * blocks..(t + 1) * blocks]);
            }
            for kernel in [kernel_for(ty), portable_kernel_for(ty)] {
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
