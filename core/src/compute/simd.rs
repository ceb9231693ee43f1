//! AVX2/FMA dot products of quantised weight rows with 8-bit activation blocks (llama.cpp's
//! integer `maddubs` scheme), chosen at run time; other CPUs use the portable code in `quant`.

use super::quant::{dot_q8_portable, BlockQ8, WeightType};

/// A dot-product routine for one weight type.
pub type DotFn = fn(&[u8], &[BlockQ8]) -> f32;

/// The fastest dot product this CPU supports for `ty` (a quantised type).
pub fn dot_for(ty: WeightType) -> DotFn {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return match ty {
            WeightType::Q4_0 => |w, x| unsafe { x86::dot_q4_0(w, x) },
            WeightType::Q4_1 => |w, x| unsafe { x86::dot_q4_1(w, x) },
            WeightType::Q8_0 => |w, x| unsafe { x86::dot_q8_0(w, x) },
            WeightType::F32 | WeightType::F16 => unreachable!("float weights use dot_f32"),
        };
    }
    match ty {
        WeightType::Q4_0 => |w, x| dot_q8_portable(WeightType::Q4_0, w, x),
        WeightType::Q4_1 => |w, x| dot_q8_portable(WeightType::Q4_1, w, x),
        WeightType::Q8_0 => |w, x| dot_q8_portable(WeightType::Q8_0, w, x),
        WeightType::F32 | WeightType::F16 => unreachable!("float weights use dot_f32"),
    }
}

/// `sum(a[i] * b[i])` in f32.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return unsafe { x86::dot_f32(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// AVX2 with FMA and F16C (every x86-64 CPU since 2013).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::quant::{BlockQ8, Q4_0_BYTES, Q4_1_BYTES, Q8_0_BYTES};

    /// The f16 at `b[at..at + 2]`, converted in hardware (software conversion would dominate:
    /// a token reads millions of block scales).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn f16_at(b: &[u8], at: usize) -> f32 {
        let bits = u16::from_le_bytes([b[at], b[at + 1]]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// 16 bytes of nibbles → 32 bytes: low nibbles first, then high nibbles.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        let tmp = _mm_loadu_si128(p as *const __m128i);
        let both = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    /// Sum of products of unsigned `a` and signed `b` bytes, as 8 floats.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn mul_sum_us8(a: __m256i, b: __m256i) -> __m256 {
        let dot = _mm256_maddubs_epi16(a, b);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
    }

    /// Sum of products of signed bytes, as 8 floats.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn mul_sum_i8(a: __m256i, b: __m256i) -> __m256 {
        mul_sum_us8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
    }

    /// Two blocks per step into two accumulators: one FMA chain would leave the core waiting
    /// on its latency.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1(w: &[u8], x: &[BlockQ8]) -> f32 {
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut mins0, mut mins1) = (0f32, 0f32);
        let block = |b: &[u8], y: &BlockQ8, acc: __m256, mins: &mut f32| {
            *mins += f16_at(b, 2) * y.s;
            let qx = nibbles(b.as_ptr().add(4));
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            _mm256_fmadd_ps(_mm256_set1_ps(f16_at(b, 0) * y.d), mul_sum_us8(qx, qy), acc)
        };
        let mut pairs = w.chunks_exact(2 * Q4_1_BYTES).zip(x.chunks_exact(2));
        for (b, y) in &mut pairs {
            acc0 = block(&b[..Q4_1_BYTES], &y[0], acc0, &mut mins0);
            acc1 = block(&b[Q4_1_BYTES..], &y[1], acc1, &mut mins1);
        }
        let done = x.len() / 2 * 2;
        if done < x.len().min(w.len() / Q4_1_BYTES) {
            acc0 = block(&w[done * Q4_1_BYTES..(done + 1) * Q4_1_BYTES], &x[done], acc0, &mut mins0);
        }
        hsum(_mm256_add_ps(acc0, acc1)) + mins0 + mins1
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_0(w: &[u8], x: &[BlockQ8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (b, y) in w.chunks_exact(Q4_0_BYTES).zip(x) {
            let d = f16_at(b, 0) * y.d;
            let qx = _mm256_sub_epi8(nibbles(b.as_ptr().add(2)), _mm256_set1_epi8(8));
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), mul_sum_i8(qx, qy), acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(w: &[u8], x: &[BlockQ8]) -> f32 {
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let block = |b: &[u8], y: &BlockQ8, acc: __m256| {
            let qx = _mm256_loadu_si256(b.as_ptr().add(2) as *const __m256i);
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            _mm256_fmadd_ps(_mm256_set1_ps(f16_at(b, 0) * y.d), mul_sum_i8(qx, qy), acc)
        };
        let mut pairs = w.chunks_exact(2 * Q8_0_BYTES).zip(x.chunks_exact(2));
        for (b, y) in &mut pairs {
            acc0 = block(&b[..Q8_0_BYTES], &y[0], acc0);
            acc1 = block(&b[Q8_0_BYTES..], &y[1], acc1);
        }
        let done = x.len() / 2 * 2;
        if done < x.len().min(w.len() / Q8_0_BYTES) {
            acc0 = block(&w[done * Q8_0_BYTES..(done + 1) * Q8_0_BYTES], &x[done], acc0);
        }
        hsum(_mm256_add_ps(acc0, acc1))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)), acc);
            i += 8;
        }
        let mut s = hsum(acc);
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::quant::{quantize_row_q8, QK};
    use super::*;

    /// The SIMD path and the portable path agree on random blocks of every quantised type.
    #[test]
    fn simd_matches_portable() {
        let mut seed = 7u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as u8
        };
        for (ty, bytes) in [(WeightType::Q4_0, 18), (WeightType::Q4_1, 20), (WeightType::Q8_0, 34)] {
            let blocks = 9;
            let mut w: Vec<u8> = (0..blocks * bytes).map(|_| rnd()).collect();
            for b in w.chunks_exact_mut(bytes) {
                b[..2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
                if ty == WeightType::Q4_1 {
                    b[2..4].copy_from_slice(&half::f16::from_f32(-0.1).to_le_bytes());
                }
            }
            let x: Vec<f32> = (0..blocks * QK).map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.3).collect();
            let mut xq = vec![BlockQ8::default(); blocks];
            quantize_row_q8(&x, &mut xq);
            let fast = dot_for(ty)(&w, &xq);
            let slow = dot_q8_portable(ty, &w, &xq);
            assert!((fast - slow).abs() <= 1e-3 * slow.abs().max(1.0), "{ty:?}: {fast} vs {slow}");
        }
    }
}
