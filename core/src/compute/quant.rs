//! ggml block formats as stored in GGUF files, decoded into one common form, and the 8-bit
//! activation blocks that quantised mat-vecs multiply them with.
//!
//! Every quantised type decodes, 32 elements at a time, into a [`Block32`]: 32 small integers
//! and a (scale, minimum) pair per half, so that element `j` is `scale[j / 16] * q[j] +
//! min[j / 16]`. That is exact (the integers are the file's, the scales are the products ggml
//! itself forms in f32), and it is the only place that knows the bit layouts: the CPU packer and
//! the GPU repacker both build their layouts from it.

use half::{bf16, f16};

/// Elements per quantisation block of the activations (and of the legacy types).
pub const QK: usize = 32;
/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

/// The 16 values of the IQ4_NL / IQ4_XS non-linear 4-bit code.
const IQ4_VALUES: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// Weight storage types Murmur reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// 32-bit floats.
    F32,
    /// 16-bit floats.
    F16,
    /// bfloat16.
    BF16,
    /// ggml Q4_0.
    Q4_0,
    /// ggml Q4_1.
    Q4_1,
    /// ggml Q5_0.
    Q5_0,
    /// ggml Q5_1.
    Q5_1,
    /// ggml Q8_0.
    Q8_0,
    /// ggml Q2_K.
    Q2K,
    /// ggml Q3_K.
    Q3K,
    /// ggml Q4_K.
    Q4K,
    /// ggml Q5_K.
    Q5K,
    /// ggml Q6_K.
    Q6K,
    /// ggml IQ4_NL.
    IQ4NL,
    /// ggml IQ4_XS.
    IQ4XS,
}

/// How a quantised type's decoded blocks are best stored for the kernels (see [`super::packed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Unsigned 4-bit values with one (scale, minimum) per 32: Q4_0, Q4_1.
    Nibbles,
    /// Unsigned 4-bit values with ggml's own scales (f16 per 256, 6 bits per 32): Q4_K.
    NibblesK,
    /// Unsigned 5-bit values with one (scale, minimum) per 32: Q5_0, Q5_1, Q5_K.
    Nibbles5,
    /// Signed bytes with one scale per 32 and no minimum: Q8_0, IQ4_NL, IQ4_XS.
    Bytes,
    /// Signed bytes with a (scale, minimum) per 16: Q2_K, Q3_K.
    Bytes16,
    /// Unsigned 6-bit values with ggml's own scales (an f16 per row and an i8 per 16): Q6_K.
    Bits6,
}

impl WeightType {
    /// Every type, in ggml's numbering order.
    pub const ALL: [WeightType; 15] = [
        WeightType::F32,
        WeightType::F16,
        WeightType::Q4_0,
        WeightType::Q4_1,
        WeightType::Q5_0,
        WeightType::Q5_1,
        WeightType::Q8_0,
        WeightType::Q2K,
        WeightType::Q3K,
        WeightType::Q4K,
        WeightType::Q5K,
        WeightType::Q6K,
        WeightType::IQ4NL,
        WeightType::IQ4XS,
        WeightType::BF16,
    ];

    /// The type with ggml's number `id` (the GGUF tensor directory's type field).
    pub fn from_ggml(id: u32) -> Option<Self> {
        Some(match id {
            0 => WeightType::F32,
            1 => WeightType::F16,
            2 => WeightType::Q4_0,
            3 => WeightType::Q4_1,
            6 => WeightType::Q5_0,
            7 => WeightType::Q5_1,
            8 => WeightType::Q8_0,
            10 => WeightType::Q2K,
            11 => WeightType::Q3K,
            12 => WeightType::Q4K,
            13 => WeightType::Q5K,
            14 => WeightType::Q6K,
            20 => WeightType::IQ4NL,
            23 => WeightType::IQ4XS,
            30 => WeightType::BF16,
            _ => return None,
        })
    }

    /// Bytes taken by one row of `cols` elements, or `None` if `cols` does not fill whole blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        let (bytes, elems) = self.block();
        (cols % elems == 0).then(|| cols / elems * bytes)
    }

    /// Bytes per block and elements per block.
    pub fn block(self) -> (usize, usize) {
        match self {
            WeightType::F32 => (4, 1),
            WeightType::F16 | WeightType::BF16 => (2, 1),
            WeightType::Q4_0 | WeightType::IQ4NL => (18, QK),
            WeightType::Q4_1 => (20, QK),
            WeightType::Q5_0 => (22, QK),
            WeightType::Q5_1 => (24, QK),
            WeightType::Q8_0 => (34, QK),
            WeightType::Q2K => (84, QK_K),
            WeightType::Q3K => (110, QK_K),
            WeightType::Q4K => (144, QK_K),
            WeightType::Q5K => (176, QK_K),
            WeightType::Q6K => (210, QK_K),
            WeightType::IQ4XS => (136, QK_K),
        }
    }

    /// Byte offsets of the f16 scales in one block (random bytes elsewhere make a valid block).
    pub fn f16_fields(self) -> &'static [usize] {
        match self {
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => &[],
            WeightType::Q4_0 | WeightType::Q5_0 | WeightType::Q8_0 | WeightType::IQ4NL | WeightType::IQ4XS => &[0],
            WeightType::Q4_1 | WeightType::Q5_1 | WeightType::Q4K | WeightType::Q5K => &[0, 2],
            WeightType::Q2K => &[80, 82],
            WeightType::Q3K => &[108],
            WeightType::Q6K => &[208],
        }
    }

    /// How the kernels store it, or `None` for the float types.
    pub fn family(self) -> Option<Family> {
        match self {
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => None,
            WeightType::Q4_0 | WeightType::Q4_1 => Some(Family::Nibbles),
            WeightType::Q4K => Some(Family::NibblesK),
            WeightType::Q5_0 | WeightType::Q5_1 | WeightType::Q5K => Some(Family::Nibbles5),
            WeightType::Q8_0 | WeightType::IQ4NL | WeightType::IQ4XS => Some(Family::Bytes),
            WeightType::Q2K | WeightType::Q3K => Some(Family::Bytes16),
            WeightType::Q6K => Some(Family::Bits6),
        }
    }
}

/// 32 decoded elements: element `j` is `scale[j / 16] * q[j] + min[j / 16]`; the 4- and
/// 5-bit types' integers are unsigned.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Block32 {
    /// The integers (4-bit types: 0..=15).
    pub q: [i8; QK],
    /// Scale of each half.
    pub scale: [f32; 2],
    /// Minimum (offset) of each half.
    pub min: [f32; 2],
}

impl Block32 {
    fn uniform(q: [i8; QK], scale: f32, min: f32) -> Self {
        Self { q, scale: [scale; 2], min: [min; 2] }
    }

    /// The low four bits of the integers as ggml stores nibbles: byte `i` holds element `i`
    /// (low nibble) and element `16 + i` (high nibble).
    pub fn nibble_bytes(&self) -> [u8; 16] {
        std::array::from_fn(|i| (self.q[i] as u8 & 0xF) | ((self.q[i + 16] as u8 & 0xF) << 4))
    }

    /// Element `j` as f32.
    pub fn value(&self, j: usize) -> f32 {
        self.scale[j / 16] * self.q[j] as f32 + self.min[j / 16]
    }
}

#[inline]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Q4_K / Q5_K: the 6-bit scale and minimum of sub-block `j` (0..8).
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Q3_K: the sixteen 6-bit scales, unpacked (still offset by 32).
fn scales_q3k(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8;
    }
    out
}

/// The ggml block of `row` (a row of `ty`) that holds 32-element block `b`, and which 32 of it
/// that is (0..8 for super-blocks).
fn block_of(ty: WeightType, row: &[u8], b: usize) -> (&[u8], usize) {
    let (bytes, elems) = ty.block();
    let per = (elems / QK).max(1);
    (&row[b / per * bytes..(b / per + 1) * bytes], b % per)
}

/// One 32-element block of a Q4_K or Q5_K row in ggml's own terms: element `j` is
/// `d * scale * q[j] - dmin * min`.
pub struct KBlock {
    /// The super-block's scale of the values.
    pub d: f16,
    /// The super-block's scale of the minimums.
    pub dmin: f16,
    /// The block's 6-bit scale.
    pub scale: u8,
    /// The block's 6-bit minimum.
    pub min: u8,
    /// The unsigned values (4 bits, or 5 for Q5_K).
    pub q: [u8; QK],
}

impl KBlock {
    /// Block `b` of `row`, a row of `ty` (Q4_K or Q5_K).
    pub fn of(ty: WeightType, row: &[u8], b: usize) -> Self {
        let (x, sub) = block_of(ty, row, b);
        let (scale, min) = scale_min_k4(sub, &x[4..16]);
        let qs = if ty == WeightType::Q4K { &x[16 + 32 * (sub / 2)..] } else { &x[48 + 32 * (sub / 2)..] };
        let q = std::array::from_fn(|j| {
            let n = (qs[j] >> (4 * (sub % 2))) & 0xF;
            if ty == WeightType::Q5K {
                n | (((x[16 + j] >> sub) & 1) << 4)
            } else {
                n
            }
        });
        Self { d: f16::from_le_bytes([x[0], x[1]]), dmin: f16::from_le_bytes([x[2], x[3]]), scale, min, q }
    }
}

/// One 32-element block of a Q6_K row in ggml's own terms: element `j` is
/// `d * scales[j / 16] * (q[j] - 32)`.
pub struct Q6Block {
    /// The super-block's scale.
    pub d: f16,
    /// The scale of each half.
    pub scales: [i8; 2],
    /// The unsigned 6-bit values.
    pub q: [u8; QK],
}

impl Q6Block {
    /// Block `b` of `row`.
    pub fn of(row: &[u8], b: usize) -> Self {
        let (x, sub) = block_of(WeightType::Q6K, row, b);
        let (chunk, g) = (sub / 4, sub % 4);
        let (ql, qh, sc) = (&x[64 * chunk..], &x[128 + 32 * chunk..], &x[192 + 8 * chunk..]);
        let q = std::array::from_fn(|l| {
            let low = if g % 2 == 0 { ql[l] } else { ql[l + 32] };
            let low = if g < 2 { low & 0xF } else { low >> 4 };
            low | (((qh[l] >> (2 * g)) & 3) << 4)
        });
        Self { d: f16::from_le_bytes([x[208], x[209]]), scales: [sc[2 * g] as i8, sc[2 * g + 1] as i8], q }
    }
}

/// Decodes the `b`-th 32-element block of `row` (a quantised row of `ty`).
pub fn decode_block(ty: WeightType, row: &[u8], b: usize) -> Block32 {
    let mut q = [0i8; QK];
    let (x, sub) = block_of(ty, row, b);
    // Nibble j (0..32) of 16 bytes in ggml's order: low nibbles are 0..16, high ones 16..32.
    let nibble = |qs: &[u8], j: usize| if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 };
    match ty {
        WeightType::Q4_0 => {
            q.iter_mut().enumerate().for_each(|(j, v)| *v = nibble(&x[2..], j) as i8);
            let d = f16_at(x, 0);
            Block32::uniform(q, d, -8.0 * d)
        }
        WeightType::Q4_1 => {
            q.iter_mut().enumerate().for_each(|(j, v)| *v = nibble(&x[4..], j) as i8);
            Block32::uniform(q, f16_at(x, 0), f16_at(x, 2))
        }
        WeightType::Q5_0 | WeightType::Q5_1 => {
            let at = if ty == WeightType::Q5_0 { 2 } else { 4 };
            let qh = u32::from_le_bytes([x[at], x[at + 1], x[at + 2], x[at + 3]]);
            for (j, v) in q.iter_mut().enumerate() {
                *v = (nibble(&x[at + 4..], j) | ((((qh >> j) & 1) as u8) << 4)) as i8;
            }
            let d = f16_at(x, 0);
            // Q5_0 is (q - 16) * d: as exact, and unsigned like the others of its family.
            Block32::uniform(q, d, if ty == WeightType::Q5_0 { -16.0 * d } else { f16_at(x, 2) })
        }
        WeightType::Q8_0 => {
            q.iter_mut().zip(&x[2..]).for_each(|(v, &b)| *v = b as i8);
            Block32::uniform(q, f16_at(x, 0), 0.0)
        }
        WeightType::IQ4NL => {
            q.iter_mut().enumerate().for_each(|(j, v)| *v = IQ4_VALUES[nibble(&x[2..], j) as usize]);
            Block32::uniform(q, f16_at(x, 0), 0.0)
        }
        WeightType::IQ4XS => {
            let scales_h = u16::from_le_bytes([x[2], x[3]]);
            let ls = ((x[4 + sub / 2] >> (4 * (sub % 2))) & 0xF) | ((((scales_h >> (2 * sub)) & 3) as u8) << 4);
            let qs = &x[8 + 16 * sub..];
            q.iter_mut().enumerate().for_each(|(j, v)| *v = IQ4_VALUES[nibble(qs, j) as usize]);
            Block32::uniform(q, f16_at(x, 0) * (ls as i32 - 32) as f32, 0.0)
        }
        WeightType::Q4K | WeightType::Q5K => {
            let k = KBlock::of(ty, row, b);
            Block32::uniform(k.q.map(|v| v as i8), k.d.to_f32() * k.scale as f32, -(k.dmin.to_f32() * k.min as f32))
        }
        WeightType::Q6K => {
            let six = Q6Block::of(row, b);
            q.iter_mut().zip(six.q).for_each(|(v, u)| *v = (u as i32 - 32) as i8);
            let d = six.d.to_f32();
            Block32 { q, scale: [d * six.scales[0] as f32, d * six.scales[1] as f32], min: [0.0; 2] }
        }
        WeightType::Q2K | WeightType::Q3K => {
            let (chunk, j) = (sub / 4, sub % 4);
            let (qs_at, shift) = (if ty == WeightType::Q2K { 16 } else { 32 } + 32 * chunk, 2 * j);
            for (l, v) in q.iter_mut().enumerate() {
                let n = ((x[qs_at + l] >> shift) & 3) as i8;
                *v = match ty {
                    WeightType::Q2K => n,
                    _ => n - if x[l] & (1 << (4 * chunk + j)) != 0 { 0 } else { 4 },
                };
            }
            let is = 8 * chunk + 2 * j;
            if ty == WeightType::Q2K {
                let (d, dmin) = (f16_at(x, 80), f16_at(x, 82));
                let (s0, s1) = (x[is], x[is + 1]);
                Block32 {
                    q,
                    scale: [d * (s0 & 0xF) as f32, d * (s1 & 0xF) as f32],
                    min: [-(dmin * (s0 >> 4) as f32), -(dmin * (s1 >> 4) as f32)],
                }
            } else {
                let d = f16_at(x, 108);
                let sc = scales_q3k(&x[96..108]);
                Block32 { q, scale: [d * (sc[is] as i32 - 32) as f32, d * (sc[is + 1] as i32 - 32) as f32], min: [0.0; 2] }
            }
        }
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => {
            unreachable!("float types have no blocks")
        }
    }
}

/// One 32-element block of an activation row quantised to 8 bits.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(16))]
pub struct BlockQ8 {
    /// Scale (rounded through f16, as ggml stores it).
    pub d: f32,
    /// `d * sum(qs)`, rounded through f16 where llama.cpp rounds it (Q8_1): folds a block's
    /// minimum into one multiply.
    pub s: f32,
    /// `d * sum` of each half of `qs`: the minimums of types with one per 16 elements.
    pub half_sums: [f32; 2],
    /// Quantised values.
    pub qs: [i8; QK],
}

/// Rounds to nearest, ties to even (as ggml's AVX quantiser does), without a libm call.
/// Exact for |v| < 2^22; quantised values stay within ±127.
#[inline]
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (v + MAGIC) - MAGIC
}

/// Quantises a row of activations (`x`, whole blocks of the weight type `ty`) into `out`, one
/// block per 32 values, as llama.cpp does for a mat-mul with that type: the K-quants and
/// IQ4_XS multiply Q8_K (one f32 scale per 256), the others Q8_0/Q8_1 (one f16 scale per 32).
/// The kernels are the same either way: Q8_K's scale is repeated in each of its blocks.
pub fn quantize_activations(ty: WeightType, x: &[f32], out: &mut [BlockQ8]) {
    let (_, per) = ty.block();
    for (xs, os) in x.chunks_exact(per.max(QK)).zip(out.chunks_exact_mut(per.max(QK) / QK)) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        if per == QK_K {
            // Q8_K: the scale is the reciprocal of 127 / amax, in f32.
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let d = if amax != 0.0 { 1.0 / id } else { 0.0 };
            for (xb, ob) in xs.chunks_exact(QK).zip(os.iter_mut()) {
                let sum = quantize_block(xb, d, id, ob);
                ob.s = d * sum as f32;
            }
        } else {
            let d = amax / 127.0;
            let ob = &mut os[0];
            let sum = quantize_block(xs, f16::from_f32(d).to_f32(), if d != 0.0 { 1.0 / d } else { 0.0 }, ob);
            // Q8_1 (for Q4_1 and Q5_1) stores the sum of the unrounded scale through f16.
            ob.s = match ty {
                WeightType::Q4_1 | WeightType::Q5_1 => f16::from_f32(d * sum as f32).to_f32(),
                _ => ob.d * sum as f32,
            };
        }
    }
}

/// Quantises the 32 values `x` with inverse scale `id` into `out`, stored with scale `d`;
/// returns the sum of the quantised values.
fn quantize_block(x: &[f32], d: f32, id: f32, out: &mut BlockQ8) -> i32 {
    let mut sums = [0i32; 2];
    for (j, (q, v)) in out.qs.iter_mut().zip(x).enumerate() {
        let r = round_even(v * id) as i32;
        *q = r as i8;
        sums[j / 16] += r;
    }
    out.d = d;
    out.half_sums = sums.map(|s| d * s as f32);
    sums[0] + sums[1]
}

/// Dequantises one weight row (`cols` elements stored in `row`) into `out`.
pub fn dequantize_row(ty: WeightType, row: &[u8], out: &mut [f32]) {
    match ty {
        WeightType::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        WeightType::F16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        WeightType::BF16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        _ => {
            for (b, ob) in out.chunks_exact_mut(QK).enumerate() {
                let blk = decode_block(ty, row, b);
                ob.iter_mut().enumerate().for_each(|(j, o)| *o = blk.value(j));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q4_1_block(d: f32, m: f32, nibbles: &[u8; 32]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        b.extend_from_slice(&f16::from_f32(m).to_le_bytes());
        for j in 0..16 {
            b.push(nibbles[j] | (nibbles[j + 16] << 4));
        }
        b
    }

    #[test]
    fn q4_1_dequantizes_low_nibbles_first() {
        let mut nib = [0u8; 32];
        nib[0] = 3;
        nib[16] = 15;
        let b = q4_1_block(0.5, -1.0, &nib);
        let mut out = [0f32; 32];
        dequantize_row(WeightType::Q4_1, &b, &mut out);
        assert_eq!(out[0], 0.5);
        assert_eq!(out[16], 6.5);
        assert_eq!(out[1], -1.0);
    }

    /// Q6_K, written out as ggml's `dequantize_row_q6_K` loops over it.
    #[test]
    fn q6_k_matches_ggml_loop_order() {
        let mut x: Vec<u8> = (0..210u32).map(|i| (i * 97 % 251) as u8).collect();
        x[208..210].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
        let mut want = vec![0f32; 256];
        let d = f16_at(&x, 208);
        for n in 0..2 {
            let (ql, qh, sc) = (&x[64 * n..], &x[128 + 32 * n..], &x[192 + 8 * n..]);
            for l in 0..32 {
                let is = l / 16;
                let q = |lo: u8, sh: u32| ((lo | (((qh[l] >> sh) & 3) << 4)) as i32 - 32) as f32;
                want[128 * n + l] = d * sc[is] as i8 as f32 * q(ql[l] & 0xF, 0);
                want[128 * n + l + 32] = d * sc[is + 2] as i8 as f32 * q(ql[l + 32] & 0xF, 2);
                want[128 * n + l + 64] = d * sc[is + 4] as i8 as f32 * q(ql[l] >> 4, 4);
                want[128 * n + l + 96] = d * sc[is + 6] as i8 as f32 * q(ql[l + 32] >> 4, 6);
            }
        }
        let mut got = vec![0f32; 256];
        dequantize_row(WeightType::Q6K, &x, &mut got);
        assert_eq!(got, want);
    }
}
