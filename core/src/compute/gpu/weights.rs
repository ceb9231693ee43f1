//! Weights repacked once at load into the layout the shaders read (see `shaders/quant.wgsl`).
//!
//! GGUF's Q4_0 (18-byte) and Q8_0 (34-byte) blocks break the 4-byte alignment that WGSL storage
//! reads need, and their f16 scales would need `shader-f16`. So each quantised matrix becomes
//! two arrays: the blocks' quants as whole u32 words (same byte order), and an f32
//! (scale, minimum) pair per block — Q4_0 and Q4_1 then share one kernel (Q4_0's minimum is
//! -8 × scale). That costs 18–33 % more memory than the file; everything else (F32, F16, and any
//! one-row weight such as a norm) is stored as f32. A weight larger than the device's binding
//! limit is split into parts of whole rows, each bound on its own.

use crate::compute::quant::{dequantize_row, Q4_0_BYTES, Q4_1_BYTES, Q8_0_BYTES, QK};
use crate::compute::{WeightSpec, WeightType};

/// How the shaders read a weight: 4- or 8-bit quants with per-block (scale, minimum), or f32.
pub fn bits_of(spec: &WeightSpec) -> u32 {
    match spec.ty {
        _ if spec.rows == 1 => 32,
        WeightType::Q4_0 | WeightType::Q4_1 => 4,
        WeightType::Q8_0 => 8,
        WeightType::F32 | WeightType::F16 => 32,
    }
}

/// Bytes per row of the quants array and of the scales array.
pub fn row_bytes(bits: u32, cols: usize) -> (usize, usize) {
    if bits == 32 {
        (cols * 4, 0)
    } else {
        (cols / QK * bits as usize * 4, cols / QK * 8)
    }
}

/// Writes row `r` of `spec` (read from `file`, the weight's bytes) into `q` (quant words) and
/// `s` (per-block scale and minimum), both as little-endian bytes.
pub fn repack_row(spec: &WeightSpec, bits: u32, file: &[u8], r: usize, q: &mut [u8], s: &mut [u8]) {
    let rb = spec.ty.row_bytes(spec.cols).expect("checked by the host");
    let row = &file[r * rb..(r + 1) * rb];
    if bits == 32 {
        let mut vals = vec![0f32; spec.cols];
        dequantize_row(spec.ty, row, &mut vals);
        for (dst, v) in q.chunks_exact_mut(4).zip(vals) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        return;
    }
    let (block, quants_at) = match spec.ty {
        WeightType::Q4_0 => (Q4_0_BYTES, 2),
        WeightType::Q4_1 => (Q4_1_BYTES, 4),
        _ => (Q8_0_BYTES, 2),
    };
    let qlen = bits as usize * 4;
    let f16 = |b: &[u8], at: usize| half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32();
    for ((b, qd), sd) in row.chunks_exact(block).zip(q.chunks_exact_mut(qlen)).zip(s.chunks_exact_mut(8)) {
        qd.copy_from_slice(&b[quants_at..quants_at + qlen]);
        let d = f16(b, 0);
        let m = match spec.ty {
            WeightType::Q4_0 => -8.0 * d,
            WeightType::Q4_1 => f16(b, 2),
            _ => 0.0,
        };
        sd[..4].copy_from_slice(&d.to_le_bytes());
        sd[4..].copy_from_slice(&m.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_becomes_scale_and_minus_eight_scales() {
        let mut block = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend((0..16).map(|i| i as u8));
        let spec = WeightSpec { ty: WeightType::Q4_0, rows: 2, cols: 32, offset: 0 };
        let file = [block.clone(), block].concat();
        let (mut q, mut s) = (vec![0u8; 16], vec![0u8; 8]);
        repack_row(&spec, bits_of(&spec), &file, 1, &mut q, &mut s);
        assert_eq!(q, (0..16).collect::<Vec<u8>>());
        assert_eq!(f32::from_le_bytes(s[..4].try_into().unwrap()), 0.5);
        assert_eq!(f32::from_le_bytes(s[4..].try_into().unwrap()), -4.0);
    }
}
