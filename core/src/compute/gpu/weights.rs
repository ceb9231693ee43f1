//! Weights repacked once at load into the layout the shaders read (see `shaders/quant.wgsl`).
//!
//! GGUF's blocks break the 4-byte alignment that WGSL storage reads need, and their f16 scales
//! would need `shader-f16`. So each quantised matrix becomes two arrays, built from its decoded
//! blocks ([`decode_block`]): the quants as whole u32 words, and f32 (scale, minimum) pairs.
//! Types of 4-bit unsigned values with one pair per 32 elements (Q4_0, Q4_1, Q4_K) keep 4 bits;
//! every other quantised type becomes signed bytes with one pair per 16 elements, which holds
//! each of them exactly (Q6_K's and Q3_K's sub-block scales, Q5's fifth bit, IQ4's code book).
//! Floats (F32, F16, BF16, and any one-row weight such as a norm) are stored as f32. A weight
//! larger than the device's binding limit is split into parts of whole rows, each bound on its own.

use super::{GpuBackend, GpuWeight, Part};
use crate::compute::quant::{decode_block, dequantize_row, Family, QK};
use crate::compute::{BackendError, BackendResult, WeightHolder, WeightSpec};

/// How the shaders read a weight: 4- or 8-bit quants with (scale, minimum) pairs, or f32.
pub fn bits_of(spec: &WeightSpec) -> u32 {
    match spec.ty.family() {
        _ if spec.rows == 1 => 32,
        Some(Family::Nibbles | Family::NibblesK) => 4,
        Some(Family::Nibbles5 | Family::Bytes | Family::Bytes16 | Family::Bits6) => 8,
        None => 32,
    }
}

/// Elements that share one (scale, minimum) pair.
fn per_scale(bits: u32) -> usize {
    if bits == 4 {
        QK
    } else {
        QK / 2
    }
}

/// Bytes per row of the quants array and of the scales array.
pub fn row_bytes(bits: u32, cols: usize) -> (usize, usize) {
    if bits == 32 {
        (cols * 4, 0)
    } else {
        (cols / QK * bits as usize * 4, cols / per_scale(bits) * 8)
    }
}

/// Writes row `r` of `spec` (read from `file`, the weight's bytes) into `q` (quant words) and
/// `s` (the scale and minimum pairs), both as little-endian bytes.
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
    let pairs = QK / per_scale(bits);
    let put = |s: &mut [u8], scale: f32, min: f32| {
        s[..4].copy_from_slice(&scale.to_le_bytes());
        s[4..8].copy_from_slice(&min.to_le_bytes());
    };
    for (b, (qd, sd)) in q.chunks_exact_mut(bits as usize * 4).zip(s.chunks_exact_mut(8 * pairs)).enumerate() {
        let blk = decode_block(spec.ty, row, b);
        if bits == 4 {
            qd.copy_from_slice(&blk.nibble_bytes());
            put(sd, blk.scale[0], blk.min[0]);
        } else {
            qd.iter_mut().zip(blk.q).for_each(|(d, v)| *d = v as u8);
            for h in 0..2 {
                put(&mut sd[8 * h..], blk.scale[h], blk.min[h]);
            }
        }
    }
}

impl GpuBackend {
    /// Repacks and uploads `spec`'s weight, in parts of whole rows past the binding limit, within
    /// the GPU's weight cap.
    pub(super) fn upload_weight(&mut self, spec: WeightSpec) -> BackendResult<GpuWeight> {
        let bits = bits_of(&spec);
        let (qrow, srow) = row_bytes(bits, spec.cols);
        let bytes = (spec.rows * (qrow + srow)) as u64;
        let budget = WeightHolder::GpuUploaded.cap(self.model.len()) as u64;
        if self.weight_bytes + bytes > budget {
            return Err(BackendError::Exhausted(format!(
                "uploading a {}x{} weight would take GPU weights past {budget} bytes",
                spec.rows, spec.cols
            )));
        }
        let part_rows = (self.max_binding as usize / qrow.max(srow).max(1)).min(spec.rows);
        if part_rows == 0 {
            return Err(BackendError::Exhausted(format!(
                "one row of a {}x{} weight is larger than the GPU can bind ({} bytes)",
                spec.rows, spec.cols, self.max_binding
            )));
        }
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let row_bytes = spec.ty.row_bytes(spec.cols).expect("checked by the host");
        let mut parts = Vec::new();
        for row0 in (0..spec.rows).step_by(part_rows) {
            let rows = part_rows.min(spec.rows - row0);
            let file = self.model.read((spec.offset + row0 * row_bytes) as u64, rows * row_bytes)?;
            let (mut qd, mut sd) = (vec![0u8; rows * qrow], vec![0u8; rows * srow]);
            for r in 0..rows {
                let (q, s) = (&mut qd[r * qrow..(r + 1) * qrow], &mut sd[r * srow..(r + 1) * srow]);
                repack_row(&spec, bits, &file, r, q, s);
            }
            let (q, s) = (self.buffer(qd.len() as u64, usage), self.buffer(sd.len() as u64, usage));
            self.gpu.queue.write_buffer(&q.buf, 0, &qd);
            self.gpu.queue.write_buffer(&s.buf, 0, &sd);
            parts.push(Part { row0, rows, q, s });
        }
        self.check()?;
        self.weight_bytes += bytes;
        Ok(GpuWeight { bits, cols: spec.cols, parts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::WeightType;

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
