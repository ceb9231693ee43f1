//! Quantised weights repacked once, eight rows interleaved, for the mat-vec/mat-mul kernels.
//!
//! A GGUF row keeps each block's scales next to its quants, so a row-at-a-time dot product
//! spends most of its time on per-block scalar work (scale decoding, horizontal sums).
//! Interleaving eight rows puts, for every 32-element block, the eight rows' scales in one
//! vector and their quants side by side: one integer multiply-add then serves eight rows, eight
//! f16 scales convert in one instruction, and the sums land in one vector of eight outputs, with
//! no horizontal reduction. Every type is packed from its decoded blocks
//! ([`crate::compute::quant::decode_block`]) into the layout of its [`Family`]:
//!
//! - Nibbles (Q4_0, Q4_1): 8 f16 scales, 8 f16 minimums, then 4 vectors of 32 bytes;
//!   lane `r` (4 bytes) of vector `k` holds row `r`'s bytes `4k..4k+4`, whose low nibbles are
//!   columns `4k..4k+4` and high nibbles columns `16+4k..16+4k+4`.
//! - NibblesK (Q4_K): ggml's own scales, laid out per super-block of 256 columns: 8 f16 scales,
//!   8 f16 minimum scales, 8 × 8 6-bit scales and 8 × 8 6-bit minimums (block-major), then each
//!   block's 4 vectors of Nibbles. 4.625 bits a weight (ggml's 4.5), decoded exactly.
//! - Nibbles5 (Q5_0, Q5_1, Q5_K): Nibbles' layout of the low four bits, then one vector whose
//!   lane `r` holds row `r`'s fifth bits as a u32 (bit `j`: column `j`).
//! - Bytes (Q8_0, IQ4_NL, IQ4_XS): 8 f16 scales, then 8 vectors of 32 bytes; lane `r` of
//!   vector `k` holds row `r`'s signed values `4k..4k+4`.
//! - Bytes16 (Q2_K, Q3_K): 8 f16 scales of the first 16 columns, 8 of the last 16, 8 f16
//!   minimums of each half, then the 8 vectors of Bytes.
//! - Bits6 (Q6_K): ggml's own scales, 8 f16 super-block scales and 2 × 8 i8 scales of the
//!   halves; Nibbles' 4 vectors of the low four bits; then 2 vectors of the top two bits, one
//!   per half: bits `2k..2k + 2` of lane `r`'s byte `i` belong to column `16h + 4k + i`.
//!   The same bits as ggml's (7 per weight, against its 6.56), so a Q6_K model packs to
//!   about its own size, and every value decodes exactly.
//!
//! The other K-quant sub-block scales (products of two ggml factors) are rounded to f16 here.
//! Every packed weight decodes back to rows ([`PackedWeight::dequantize_row`]), so the CPU holds
//! one copy of a quantised weight, packed, whatever it is used for.

use half::f16;

use super::kernels::WeightView;
use crate::compute::quant::{decode_block, f16_at, BlockQ8, Family, KBlock, Q6Block, WeightType, QK};

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
/// Bytes of one packed NibblesK super-block (8 blocks) of a group.
pub const Q4K_GROUP_SUPER: usize = 4 * ROWS + 16 * ROWS + 8 * Q4K_NIBBLES_BLOCK;
/// Where a NibblesK super-block's 6-bit scales start (its minimums follow, `8 * ROWS` later).
pub const Q4K_SCALES: usize = 4 * ROWS;
/// Where a NibblesK super-block's nibbles start.
pub const Q4K_NIBBLES: usize = Q4K_SCALES + 16 * ROWS;
/// Bytes of one block's nibbles in a NibblesK super-block.
pub const Q4K_NIBBLES_BLOCK: usize = 16 * ROWS;
/// Where a Bits6 block's low nibbles start: after 8 f16 and 2 × 8 i8 scales.
pub const Q6_NIBBLES: usize = 4 * ROWS;
/// Where a Bits6 block's top bits start.
pub const Q6_HIGH: usize = Q6_NIBBLES + 16 * ROWS;
/// Bytes of one packed Bits6 block of a group.
pub const Q6_GROUP_BLOCK: usize = Q6_HIGH + 8 * ROWS;

/// Bytes of one packed block of a group.
pub fn block_bytes(family: Family) -> usize {
    match family {
        Family::Nibbles => Q4_GROUP_BLOCK,
        Family::NibblesK => Q4K_GROUP_SUPER / 8,
        Family::Nibbles5 => Q5_GROUP_BLOCK,
        Family::Bytes => Q8_GROUP_BLOCK,
        Family::Bytes16 => Q8X16_GROUP_BLOCK,
        Family::Bits6 => Q6_GROUP_BLOCK,
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

/// Writes block `b` of `row` (a row of `ty`) as row lane `lane` of the packed `group`.
fn pack_block(ty: WeightType, row: &[u8], b: usize, lane: usize, group: &mut [u8]) {
    let family = family_of(ty);
    let dst = &mut group[b * block_bytes(family)..(b + 1) * block_bytes(family)];
    match family {
        Family::NibblesK => {
            let (sup, sub) = (&mut group[b / 8 * Q4K_GROUP_SUPER..(b / 8 + 1) * Q4K_GROUP_SUPER], b % 8);
            let k = KBlock::of(ty, row, b);
            sup[2 * lane..2 * lane + 2].copy_from_slice(&k.d.to_le_bytes());
            sup[2 * ROWS + 2 * lane..2 * ROWS + 2 * lane + 2].copy_from_slice(&k.dmin.to_le_bytes());
            sup[Q4K_SCALES + ROWS * sub + lane] = k.scale;
            sup[Q4K_SCALES + 8 * ROWS + ROWS * sub + lane] = k.min;
            for i in 0..16 {
                sup[Q4K_NIBBLES + Q4K_NIBBLES_BLOCK * sub + 32 * (i / 4) + 4 * lane + i % 4] = k.q[i] | (k.q[16 + i] << 4);
            }
        }
        Family::Bits6 => {
            let six = Q6Block::of(row, b);
            dst[2 * lane..2 * lane + 2].copy_from_slice(&six.d.to_le_bytes());
            for h in 0..2 {
                dst[2 * ROWS + ROWS * h + lane] = six.scales[h] as u8;
            }
            for i in 0..16 {
                dst[Q6_NIBBLES + 32 * (i / 4) + 4 * lane + i % 4] = (six.q[i] & 0xF) | ((six.q[16 + i] & 0xF) << 4);
            }
            for (j, &q) in six.q.iter().enumerate() {
                let (h, k, i) = (j / 16, j % 16 / 4, j % 4);
                dst[Q6_HIGH + 32 * h + 4 * lane + i] |= (q >> 4) << (2 * k);
            }
        }
        Family::Nibbles | Family::Nibbles5 => {
            let blk = decode_block(ty, row, b);
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
            let blk = decode_block(ty, row, b);
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

/// Element `j` of block `b` of row lane `lane` of the packed `group`.
fn unpack_value(family: Family, group: &[u8], b: usize, lane: usize, j: usize) -> f32 {
    if family == Family::NibblesK {
        let (sup, sub) = (&group[b / 8 * Q4K_GROUP_SUPER..], b % 8);
        let byte = sup[Q4K_NIBBLES + Q4K_NIBBLES_BLOCK * sub + 32 * (j % 16 / 4) + 4 * lane + j % 4];
        let q = if j < 16 { byte & 0xF } else { byte >> 4 };
        let (scale, min) = (sup[Q4K_SCALES + ROWS * sub + lane], sup[Q4K_SCALES + 8 * ROWS + ROWS * sub + lane]);
        return f16_at(sup, 2 * lane) * scale as f32 * q as f32 - f16_at(sup, 2 * ROWS + 2 * lane) * min as f32;
    }
    let blk = &group[b * block_bytes(family)..];
    // Nibbles' byte of column j (its low nibble for j < 16, its high one after).
    let nibble = |at: usize| {
        let byte = blk[at + 32 * (j % 16 / 4) + 4 * lane + j % 4];
        if j < 16 {
            byte & 0xF
        } else {
            byte >> 4
        }
    };
    match family {
        Family::Nibbles | Family::Nibbles5 => {
            let mut q = nibble(4 * ROWS) as u32;
            if family == Family::Nibbles5 {
                let at = Q4_GROUP_BLOCK + 4 * lane;
                q |= ((u32::from_le_bytes([blk[at], blk[at + 1], blk[at + 2], blk[at + 3]]) >> j) & 1) << 4;
            }
            f16_at(blk, 2 * lane) * q as f32 + f16_at(blk, 2 * ROWS + 2 * lane)
        }
        Family::Bytes => f16_at(blk, 2 * lane) * blk[2 * ROWS + 32 * (j / 4) + 4 * lane + j % 4] as i8 as f32,
        Family::Bytes16 => {
            let h = j / 16;
            let q = blk[8 * ROWS + 32 * (j / 4) + 4 * lane + j % 4] as i8 as f32;
            f16_at(blk, 2 * ROWS * h + 2 * lane) * q + f16_at(blk, 2 * ROWS * (2 + h) + 2 * lane)
        }
        Family::NibblesK => unreachable!("decoded above"),
        Family::Bits6 => {
            let (h, k, i) = (j / 16, j % 16 / 4, j % 4);
            let top = (blk[Q6_HIGH + 32 * h + 4 * lane + i] >> (2 * k)) & 3;
            let q = (nibble(Q6_NIBBLES) | (top << 4)) as i32 - 32;
            f16_at(blk, 2 * lane) * blk[2 * ROWS + ROWS * h + lane] as i8 as f32 * q as f32
        }
    }
}

impl PackedWeight {
    /// Bytes that packing a `rows` x `cols` weight of `ty` takes.
    pub fn size_of(ty: WeightType, rows: usize, cols: usize) -> usize {
        rows.div_ceil(ROWS) * (cols / QK) * block_bytes(family_of(ty))
    }

    /// A `rows` x `cols` weight of `ty` (a quantised type) to be filled by
    /// [`PackedWeight::pack_rows`]; a last partial group is padded with zero rows.
    pub fn zeroed(ty: WeightType, rows: usize, cols: usize) -> Self {
        Self { ty, rows, blocks: cols / QK, data: vec![0; Self::size_of(ty, rows, cols)] }
    }

    /// Packs the rows of `w` as rows `first..first + w.rows` of this weight.
    pub fn pack_rows(&mut self, first: usize, w: WeightView) {
        let len = self.blocks * block_bytes(family_of(self.ty));
        for r in 0..w.rows {
            let (g, lane) = ((first + r) / ROWS, (first + r) % ROWS);
            let row = w.row(r);
            for b in 0..self.blocks {
                pack_block(self.ty, row, b, lane, &mut self.data[g * len..(g + 1) * len]);
            }
        }
    }

    /// Repacks `w` (a quantised weight).
    pub fn new(w: WeightView) -> Self {
        let mut packed = Self::zeroed(w.ty, w.rows, w.cols);
        packed.pack_rows(0, w);
        packed
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.blocks * QK
    }

    /// Bytes the packed weight holds.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether every value decodes exactly: all but the types whose scales packing rounds.
    pub fn exact(ty: WeightType) -> bool {
        !matches!(ty, WeightType::Q2K | WeightType::Q3K | WeightType::Q5K | WeightType::IQ4XS)
    }

    /// Row `r` as f32 values (`out` is at least a row long): the file's values where
    /// [`PackedWeight::exact`], else within f16 rounding of the scales.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let family = family_of(self.ty);
        let group = self.group(r / ROWS);
        for (b, o) in out.chunks_exact_mut(QK).take(self.blocks).enumerate() {
            o.iter_mut().enumerate().for_each(|(j, v)| *v = unpack_value(family, group, b, r % ROWS, j));
        }
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
            Family::NibblesK => super::simd::group_q4k,
            Family::Bits6 => super::simd::group_q6,
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
        Family::NibblesK => group_q4k_portable,
        Family::Bits6 => group_q6_portable,
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

/// Portable NibblesK group kernel: per super-block, the integer dot of each block times its
/// 6-bit scale, and its 6-bit minimum times the activations' sum.
pub fn group_q4k_portable(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    for (t, o) in out.iter_mut().enumerate().take(tokens) {
        for (lane, v) in o.iter_mut().enumerate() {
            *v = 0.0;
            for s in 0..blocks / 8 {
                let sup = &group[s * Q4K_GROUP_SUPER..(s + 1) * Q4K_GROUP_SUPER];
                let (mut dots, mut mins) = (0i32, 0f32);
                for sub in 0..8 {
                    let y = &x[t * blocks + 8 * s + sub];
                    let dot: i32 = (0..QK)
                        .map(|j| {
                            let byte = sup[Q4K_NIBBLES + Q4K_NIBBLES_BLOCK * sub + 32 * (j % 16 / 4) + 4 * lane + j % 4];
                            (if j < 16 { byte & 0xF } else { byte >> 4 }) as i32 * y.qs[j] as i32
                        })
                        .sum();
                    dots += dot * sup[Q4K_SCALES + ROWS * sub + lane] as i32;
                    mins += sup[Q4K_SCALES + 8 * ROWS + ROWS * sub + lane] as f32 * y.s;
                }
                let yd = x[t * blocks + 8 * s].d;
                *v += f16_at(sup, 2 * lane) * yd * dots as f32 - f16_at(sup, 2 * ROWS + 2 * lane) * mins;
            }
        }
    }
}

/// Portable Bits6 group kernel.
pub fn group_q6_portable(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    portable(group, x, blocks, tokens, out, Q6_GROUP_BLOCK, |blk, lane, y| {
        let mut dots = [0i32; 2];
        for (j, &a) in y.qs.iter().enumerate() {
            let (h, k, i) = (j / 16, j % 16 / 4, j % 4);
            let byte = blk[Q6_NIBBLES + 32 * k + 4 * lane + i];
            let low = if h == 0 { byte & 0xF } else { byte >> 4 };
            let top = (blk[Q6_HIGH + 32 * h + 4 * lane + i] >> (2 * k)) & 3;
            dots[h] += (low | (top << 4)) as i32 * a as i32;
        }
        (0..2)
            .map(|h| {
                let scale = f16_at(blk, 2 * lane) * blk[2 * ROWS + ROWS * h + lane] as i8 as f32;
                scale * (y.d * dots[h] as f32 - 32.0 * y.half_sums[h])
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
    use super::*;
    use crate::compute::quant::{dequantize_row, quantize_activations};

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

    /// A packed weight's rows decode to the file's values: exactly, but for the K-quant scales
    /// that packing rounds to f16 (within f16's precision there).
    #[test]
    fn packed_rows_decode_to_the_files_values() {
        let (rows, cols) = (11, 512);
        for ty in WeightType::ALL.into_iter().filter(|t| t.family().is_some()) {
            let data = random_weight(ty, rows, cols, 5);
            let view = WeightView { ty, rows, cols, data: &data };
            let packed = PackedWeight::new(view);
            let rounded = !PackedWeight::exact(ty);
            let (mut want, mut got) = (vec![0f32; cols], vec![0f32; cols]);
            for r in 0..rows {
                dequantize_row(ty, view.row(r), &mut want);
                packed.dequantize_row(r, &mut got);
                let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (j, (&w, &g)) in want.iter().zip(&got).enumerate() {
                    let tol = if rounded { 2e-3 * largest } else { 0.0 };
                    assert!((w - g).abs() <= tol, "{ty:?} row {r} column {j}: {w} vs {g}");
                }
            }
        }
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
