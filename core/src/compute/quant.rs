//! ggml block formats as stored in GGUF files, and the 8-bit activation blocks that quantised
//! mat-vecs multiply them with (as llama.cpp does: Q8_1 for Q4_1 weights, Q8_0 otherwise).

use half::f16;

/// Elements per quantisation block.
pub const QK: usize = 32;
/// Bytes of a Q4_0 block: f16 scale + 16 bytes of nibbles.
pub const Q4_0_BYTES: usize = 18;
/// Bytes of a Q4_1 block: f16 scale, f16 minimum + 16 bytes of nibbles.
pub const Q4_1_BYTES: usize = 20;
/// Bytes of a Q8_0 block: f16 scale + 32 signed bytes.
pub const Q8_0_BYTES: usize = 34;

/// Weight storage types the CPU backend reads in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// 32-bit floats.
    F32,
    /// 16-bit floats.
    F16,
    /// ggml Q4_0.
    Q4_0,
    /// ggml Q4_1.
    Q4_1,
    /// ggml Q8_0.
    Q8_0,
}

impl WeightType {
    /// Bytes taken by one row of `cols` elements, or `None` if `cols` does not fill whole blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        let (bytes, elems) = self.block();
        (cols % elems == 0).then(|| cols / elems * bytes)
    }

    /// Bytes per block and elements per block.
    fn block(self) -> (usize, usize) {
        match self {
            WeightType::F32 => (4, 1),
            WeightType::F16 => (2, 1),
            WeightType::Q4_0 => (Q4_0_BYTES, QK),
            WeightType::Q4_1 => (Q4_1_BYTES, QK),
            WeightType::Q8_0 => (Q8_0_BYTES, QK),
        }
    }
}

/// One 32-element block of an activation row quantised to 8 bits.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(16))]
pub struct BlockQ8 {
    /// Scale (rounded through f16, as ggml stores it).
    pub d: f32,
    /// `d * sum(qs)` (rounded through f16): folds Q4_1's minimum into one multiply.
    pub s: f32,
    /// Quantised values.
    pub qs: [i8; QK],
}

#[inline]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Rounds to nearest, ties to even (as ggml's AVX quantiser does), without a libm call.
/// Exact for |v| < 2^22; quantised values stay within ±127.
#[inline]
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (v + MAGIC) - MAGIC
}

/// Quantises `x` (a multiple of 32 long) into `out`, one block per 32 values.
pub fn quantize_row_q8(x: &[f32], out: &mut [BlockQ8]) {
    for (xb, ob) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in ob.qs.iter_mut().zip(xb) {
            let r = round_even(v * id) as i32;
            *q = r as i8;
            sum += r;
        }
        ob.d = f16::from_f32(d).to_f32();
        ob.s = f16::from_f32(d * sum as f32).to_f32();
    }
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
        WeightType::Q8_0 => {
            for (ob, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(Q8_0_BYTES)) {
                let d = f16_at(b, 0);
                for (o, &q) in ob.iter_mut().zip(&b[2..]) {
                    *o = d * q as i8 as f32;
                }
            }
        }
        WeightType::Q4_0 | WeightType::Q4_1 => {
            let (bytes, qs_at) = if ty == WeightType::Q4_0 { (Q4_0_BYTES, 2) } else { (Q4_1_BYTES, 4) };
            for (ob, b) in out.chunks_exact_mut(QK).zip(row.chunks_exact(bytes)) {
                let d = f16_at(b, 0);
                let (m, off) = if ty == WeightType::Q4_0 { (0.0, 8.0) } else { (f16_at(b, 2), 0.0) };
                for (j, &q) in b[qs_at..qs_at + 16].iter().enumerate() {
                    ob[j] = d * ((q & 0x0F) as f32 - off) + m;
                    ob[j + 16] = d * ((q >> 4) as f32 - off) + m;
                }
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
}
