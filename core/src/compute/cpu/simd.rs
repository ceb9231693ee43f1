//! AVX2/FMA kernels, chosen at run time; other CPUs use the portable code in `packed`.
//!
//! The quantised kernels follow llama.cpp's integer scheme (8-bit activations, `maddubs`
//! products) over the eight-row interleaved layout of [`super::packed`].

#[cfg(target_arch = "x86_64")]
use super::packed::{
    GroupOut, Q4K_GROUP_SUPER, Q4_GROUP_BLOCK, Q5_GROUP_BLOCK, Q6_GROUP_BLOCK, Q8X16_GROUP_BLOCK, Q8_GROUP_BLOCK,
};
#[cfg(target_arch = "x86_64")]
use crate::compute::quant::BlockQ8;

/// `sum(a[i] * b[i])` in f32.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return unsafe { x86::dot_f32(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One query head's attention over `len` cached positions: `out = softmax(q·Kᵀ · scale) · V`,
/// where key/value row `j` starts at `k[j * stride]` / `v[j * stride]` and `scores` is scratch
/// of `len`.
#[allow(clippy::too_many_arguments)]
pub fn attend(q: &[f32], k: &[f32], v: &[f32], stride: usize, len: usize, scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    assert!(out.len() == hd && scores.len() >= len && (len == 0 || (len - 1) * stride + hd <= k.len().min(v.len())));
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the features are present and the assert above bounds every row.
        match hd {
            64 => return unsafe { x86::attend::<8>(q, k, v, stride, len, scale, scores, out) },
            128 => return unsafe { x86::attend::<16>(q, k, v, stride, len, scale, scores, out) },
            256 => return unsafe { x86::attend::<32>(q, k, v, stride, len, scale, scores, out) },
            _ => {}
        }
    }
    let mut max = f32::NEG_INFINITY;
    for (j, sj) in scores[..len].iter_mut().enumerate() {
        *sj = dot_f32(q, &k[j * stride..j * stride + hd]) * scale;
        max = max.max(*sj);
    }
    let inv = softmax_in_place(&mut scores[..len], max);
    out.fill(0.0);
    for (j, &p) in scores[..len].iter().enumerate() {
        for (o, &vv) in out.iter_mut().zip(&v[j * stride..j * stride + hd]) {
            *o += p * vv;
        }
    }
    out.iter_mut().for_each(|o| *o *= inv);
}

/// `s = exp(s - max)`, returning `1 / sum(s)`.
fn softmax_in_place(scores: &mut [f32], max: f32) -> f32 {
    let mut sum = 0f64;
    for s in scores {
        *s = (*s - max).exp();
        sum += *s as f64;
    }
    (1.0 / sum) as f32
}

/// AVX2 with FMA and F16C (every x86-64 CPU since 2013).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// One instantiation of a raw group kernel per token count, 1 to 4.
#[cfg(target_arch = "x86_64")]
type ByTokens = [unsafe fn(*const u8, *const BlockQ8, usize, &mut GroupOut); super::packed::TOKENS];

/// Runs the `tokens`-token instance of a raw kernel after checking the slices against what its
/// unchecked loads touch.
#[cfg(target_arch = "x86_64")]
fn run_checked(
    kernels: ByTokens,
    block_bytes: usize,
    group: &[u8],
    x: &[BlockQ8],
    blocks: usize,
    tokens: usize,
    out: &mut GroupOut,
) {
    assert!(group.len() >= blocks * block_bytes, "packed group shorter than its blocks");
    assert!((1..=kernels.len()).contains(&tokens) && x.len() >= tokens * blocks, "activations too short");
    // SAFETY: `kernel_for` hands the group kernels out only when AVX2/FMA/F16C are present;
    // the asserts above bound every load.
    unsafe { kernels[tokens - 1](group.as_ptr(), x.as_ptr(), blocks, out) }
}

/// Nibbles group kernel (see [`super::packed::GroupKernel`]).
#[cfg(target_arch = "x86_64")]
pub fn group_q4(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    let kernels: ByTokens =
        [x86::nibbles::<1, false>, x86::nibbles::<2, false>, x86::nibbles::<3, false>, x86::nibbles::<4, false>];
    run_checked(kernels, Q4_GROUP_BLOCK, group, x, blocks, tokens, out);
}

/// Nibbles5 group kernel (see [`super::packed::GroupKernel`]).
#[cfg(target_arch = "x86_64")]
pub fn group_q5(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    let kernels: ByTokens = [x86::nibbles::<1, true>, x86::nibbles::<2, true>, x86::nibbles::<3, true>, x86::nibbles::<4, true>];
    run_checked(kernels, Q5_GROUP_BLOCK, group, x, blocks, tokens, out);
}

/// Bytes group kernel (see [`super::packed::GroupKernel`]).
#[cfg(target_arch = "x86_64")]
pub fn group_q8(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    let kernels: ByTokens = [x86::q8::<1>, x86::q8::<2>, x86::q8::<3>, x86::q8::<4>];
    run_checked(kernels, Q8_GROUP_BLOCK, group, x, blocks, tokens, out);
}

/// Bytes16 group kernel (see [`super::packed::GroupKernel`]).
#[cfg(target_arch = "x86_64")]
pub fn group_q8x16(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    let kernels: ByTokens = [x86::q8x16::<1>, x86::q8x16::<2>, x86::q8x16::<3>, x86::q8x16::<4>];
    run_checked(kernels, Q8X16_GROUP_BLOCK, group, x, blocks, tokens, out);
}

/// NibblesK group kernel (see [`super::packed::GroupKernel`]).
#[cfg(target_arch = "x86_64")]
pub fn group_q4k(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    let kernels: ByTokens = [x86::nibbles_k::<1>, x86::nibbles_k::<2>, x86::nibbles_k::<3>, x86::nibbles_k::<4>];
    run_checked(kernels, Q4K_GROUP_SUPER / 8, group, x, blocks, tokens, out);
}

/// Bits6 group kernel (see [`super::packed::GroupKernel`]).
#[cfg(target_arch = "x86_64")]
pub fn group_q6(group: &[u8], x: &[BlockQ8], blocks: usize, tokens: usize, out: &mut GroupOut) {
    let kernels: ByTokens = [x86::bits6::<1>, x86::bits6::<2>, x86::bits6::<3>, x86::bits6::<4>];
    run_checked(kernels, Q6_GROUP_BLOCK, group, x, blocks, tokens, out);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::packed::{
        GroupOut, Q4K_GROUP_SUPER, Q4K_NIBBLES, Q4K_NIBBLES_BLOCK, Q4K_SCALES, Q4_GROUP_BLOCK, Q5_GROUP_BLOCK, Q6_GROUP_BLOCK,
        Q6_HIGH, Q6_NIBBLES, Q8X16_GROUP_BLOCK, Q8_GROUP_BLOCK, ROWS,
    };
    use crate::compute::quant::BlockQ8;

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

    /// Eight f16 at `p` as eight floats.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn halves(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }

    /// Activation bytes `4i..4i+4` of `y`, in every 32-bit lane.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn spread(y: &BlockQ8, i: usize) -> __m256i {
        _mm256_set1_epi32((y.qs.as_ptr() as *const i32).add(i).read_unaligned())
    }

    /// For each 32-bit lane of `high` (a row's fifth bits), bits `shift..shift + 4` as bytes of
    /// 0x10 or 0: the fifth bits of the four columns that lane's nibble bytes hold.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fifth_bits(high: __m256i, shift: i32) -> __m256i {
        let t = _mm256_srl_epi32(high, _mm_cvtsi32_si128(shift));
        let b = _mm256_shuffle_epi8(
            t,
            _mm256_setr_epi8(
                0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12,
            ),
        );
        let bits = _mm256_set1_epi32(0x0804_0201);
        _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(b, bits), bits), _mm256_set1_epi8(0x10))
    }

    /// Eight rows × `T` tokens of Nibbles weights, or with `FIFTH` of Nibbles5 (each nibble's
    /// fifth bit put back). Unsigned values times signed activations fit `maddubs`; a Nibbles
    /// block's eight 16-bit partial sums cannot overflow (16 · 15 · 128 < 2¹⁵), Nibbles5's are
    /// widened per step (31 · 128 · 4 would).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn nibbles<const T: usize, const FIFTH: bool>(g: *const u8, x: *const BlockQ8, blocks: usize, out: &mut GroupOut) {
        let mask = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let block = if FIFTH { Q5_GROUP_BLOCK } else { Q4_GROUP_BLOCK };
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..blocks {
            let base = g.add(b * block);
            let high =
                if FIFTH { _mm256_loadu_si256(base.add(Q4_GROUP_BLOCK) as *const __m256i) } else { _mm256_setzero_si256() };
            let mut sums = [_mm256_setzero_si256(); T];
            for k in 0..4 {
                let raw = _mm256_loadu_si256(base.add(4 * ROWS + 32 * k) as *const __m256i);
                let mut lo = _mm256_and_si256(raw, mask);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
                if FIFTH {
                    lo = _mm256_or_si256(lo, fifth_bits(high, 4 * k as i32));
                    hi = _mm256_or_si256(hi, fifth_bits(high, 16 + 4 * k as i32));
                }
                for (t, sum) in sums.iter_mut().enumerate() {
                    let y = &*x.add(t * blocks + b);
                    let s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, spread(y, k)), _mm256_maddubs_epi16(hi, spread(y, 4 + k)));
                    *sum = if FIFTH { _mm256_add_epi32(*sum, _mm256_madd_epi16(s, ones)) } else { _mm256_add_epi16(*sum, s) };
                }
            }
            let (d, m) = (halves(base), halves(base.add(2 * ROWS)));
            for (t, (a, sum)) in acc.iter_mut().zip(sums).enumerate() {
                let y = &*x.add(t * blocks + b);
                let dots = _mm256_cvtepi32_ps(if FIFTH { sum } else { _mm256_madd_epi16(sum, ones) });
                *a = _mm256_fmadd_ps(dots, _mm256_mul_ps(d, _mm256_set1_ps(y.d)), *a);
                *a = _mm256_fmadd_ps(m, _mm256_set1_ps(y.s), *a);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), a);
        }
    }

    /// Eight rows × `T` tokens of Q8_0 weights (signed × signed through the sign trick).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8<const T: usize>(g: *const u8, x: *const BlockQ8, blocks: usize, out: &mut GroupOut) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..blocks {
            let base = g.add(b * Q8_GROUP_BLOCK);
            let mut sums = [_mm256_setzero_si256(); T];
            for k in 0..8 {
                let w = _mm256_loadu_si256(base.add(2 * ROWS + 32 * k) as *const __m256i);
                let aw = _mm256_sign_epi8(w, w);
                for (t, sum) in sums.iter_mut().enumerate() {
                    let y = &*x.add(t * blocks + b);
                    let p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(spread(y, k), w));
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, ones));
                }
            }
            let d = halves(base);
            for (t, (a, sum)) in acc.iter_mut().zip(sums).enumerate() {
                let y = &*x.add(t * blocks + b);
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(d, _mm256_set1_ps(y.d)), *a);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), a);
        }
    }

    /// Eight rows × `T` tokens of Bytes16 weights: the Q8_0 product with a scale and a
    /// minimum per half block.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8x16<const T: usize>(g: *const u8, x: *const BlockQ8, blocks: usize, out: &mut GroupOut) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..blocks {
            let base = g.add(b * Q8X16_GROUP_BLOCK);
            let mut sums = [[_mm256_setzero_si256(); 2]; T];
            for k in 0..8 {
                let w = _mm256_loadu_si256(base.add(8 * ROWS + 32 * k) as *const __m256i);
                let aw = _mm256_sign_epi8(w, w);
                for (t, sum) in sums.iter_mut().enumerate() {
                    let y = &*x.add(t * blocks + b);
                    let p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(spread(y, k), w));
                    sum[k / 4] = _mm256_add_epi32(sum[k / 4], _mm256_madd_epi16(p, ones));
                }
            }
            let d = [halves(base), halves(base.add(2 * ROWS))];
            let m = [halves(base.add(4 * ROWS)), halves(base.add(6 * ROWS))];
            for (t, (a, sum)) in acc.iter_mut().zip(sums).enumerate() {
                let y = &*x.add(t * blocks + b);
                let yd = _mm256_set1_ps(y.d);
                for h in 0..2 {
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[h]), _mm256_mul_ps(d[h], yd), *a);
                    *a = _mm256_fmadd_ps(m[h], _mm256_set1_ps(y.half_sums[h]), *a);
                }
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), a);
        }
    }

    /// Eight rows × `T` tokens of NibblesK weights, a super-block at a time: each block's
    /// `maddubs` sums (as Nibbles', they cannot overflow) times its 6-bit scale add up in 32-bit
    /// integers (8 · 32 · 15 · 127 · 63 < 2³¹), its 6-bit minimum times the activations' sum in
    /// floats; the super-block's two f16 scales apply once.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn nibbles_k<const T: usize>(g: *const u8, x: *const BlockQ8, blocks: usize, out: &mut GroupOut) {
        let mask = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); T];
        for s in 0..blocks / 8 {
            let base = g.add(s * Q4K_GROUP_SUPER);
            let mut dots = [_mm256_setzero_si256(); T];
            let mut mins = [_mm256_setzero_ps(); T];
            for sub in 0..8 {
                let mut sums = [_mm256_setzero_si256(); T];
                for k in 0..4 {
                    let raw = _mm256_loadu_si256(base.add(Q4K_NIBBLES + Q4K_NIBBLES_BLOCK * sub + 32 * k) as *const __m256i);
                    let lo = _mm256_and_si256(raw, mask);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
                    for (t, sum) in sums.iter_mut().enumerate() {
                        let y = &*x.add(t * blocks + 8 * s + sub);
                        let p =
                            _mm256_add_epi16(_mm256_maddubs_epi16(lo, spread(y, k)), _mm256_maddubs_epi16(hi, spread(y, 4 + k)));
                        *sum = _mm256_add_epi16(*sum, p);
                    }
                }
                // Each lane's scale in both its 16-bit halves: one `madd` scales and sums the pair.
                let scale = bytes_u32(base.add(Q4K_SCALES + ROWS * sub));
                let scale = _mm256_or_si256(scale, _mm256_slli_epi32(scale, 16));
                let min = _mm256_cvtepi32_ps(bytes_u32(base.add(Q4K_SCALES + 8 * ROWS + ROWS * sub)));
                for (t, sum) in sums.iter().enumerate() {
                    let y = &*x.add(t * blocks + 8 * s + sub);
                    dots[t] = _mm256_add_epi32(dots[t], _mm256_madd_epi16(*sum, scale));
                    mins[t] = _mm256_fmadd_ps(min, _mm256_set1_ps(y.s), mins[t]);
                }
            }
            let (d, dmin) = (halves(base), halves(base.add(2 * ROWS)));
            for (t, a) in acc.iter_mut().enumerate() {
                let yd = _mm256_set1_ps((*x.add(t * blocks + 8 * s)).d);
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[t]), _mm256_mul_ps(d, yd), *a);
                *a = _mm256_fnmadd_ps(dmin, mins[t], *a);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), a);
        }
    }

    /// The eight bytes at `p` as unsigned 32-bit integers.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn bytes_u32(p: *const u8) -> __m256i {
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i))
    }

    /// Bits `count..count + 2` of each byte of `high`, moved to bits 4 and 5.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn top_bits(high: __m256i, count: __m128i, two: __m256i) -> __m256i {
        _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(high, count), two), 4)
    }

    /// `d` times the eight i8 scales at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn half_scale(d: __m256, p: *const u8) -> __m256 {
        _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i))))
    }

    /// Eight rows × `T` tokens of Bits6 weights: unsigned 6-bit values times signed activations
    /// through `maddubs` (2 · 63 · 127 < 2¹⁵), each half's sum widened per step; the `- 32` of
    /// Q6_K comes in once per half through the activations' sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn bits6<const T: usize>(g: *const u8, x: *const BlockQ8, blocks: usize, out: &mut GroupOut) {
        let (mask, two) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03));
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..blocks {
            let base = g.add(b * Q6_GROUP_BLOCK);
            let high = [
                _mm256_loadu_si256(base.add(Q6_HIGH) as *const __m256i),
                _mm256_loadu_si256(base.add(Q6_HIGH + 32) as *const __m256i),
            ];
            let mut sums = [[_mm256_setzero_si256(); 2]; T];
            for k in 0..4 {
                let raw = _mm256_loadu_si256(base.add(Q6_NIBBLES + 32 * k) as *const __m256i);
                let count = _mm_cvtsi32_si128(2 * k as i32);
                let lo = _mm256_or_si256(_mm256_and_si256(raw, mask), top_bits(high[0], count, two));
                let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), mask), top_bits(high[1], count, two));
                for (t, sum) in sums.iter_mut().enumerate() {
                    let y = &*x.add(t * blocks + b);
                    sum[0] = _mm256_add_epi32(sum[0], _mm256_madd_epi16(_mm256_maddubs_epi16(lo, spread(y, k)), ones));
                    sum[1] = _mm256_add_epi32(sum[1], _mm256_madd_epi16(_mm256_maddubs_epi16(hi, spread(y, 4 + k)), ones));
                }
            }
            let d = halves(base);
            let scale = [half_scale(d, base.add(2 * ROWS)), half_scale(d, base.add(3 * ROWS))];
            for (t, (a, sum)) in acc.iter_mut().zip(sums).enumerate() {
                let y = &*x.add(t * blocks + b);
                for h in 0..2 {
                    let dot =
                        _mm256_fmsub_ps(_mm256_cvtepi32_ps(sum[h]), _mm256_set1_ps(y.d), _mm256_set1_ps(32.0 * y.half_sums[h]));
                    *a = _mm256_fmadd_ps(dot, scale[h], *a);
                }
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), a);
        }
    }

    /// [`super::attend`] for heads of `8 * C` floats, the output accumulated in registers.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn attend<const C: usize>(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        stride: usize,
        len: usize,
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let qv: [__m256; C] = std::array::from_fn(|c| _mm256_loadu_ps(q.as_ptr().add(8 * c)));
        let mut max = f32::NEG_INFINITY;
        for (j, sj) in scores[..len].iter_mut().enumerate() {
            let kj = k.as_ptr().add(j * stride);
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for c in (0..C).step_by(2) {
                a0 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(kj.add(8 * c)), a0);
                a1 = _mm256_fmadd_ps(qv[c + 1], _mm256_loadu_ps(kj.add(8 * c + 8)), a1);
            }
            *sj = hsum(_mm256_add_ps(a0, a1)) * scale;
            max = max.max(*sj);
        }
        let inv = super::softmax_in_place(&mut scores[..len], max);
        let mut acc = [_mm256_setzero_ps(); C];
        for (j, &p) in scores[..len].iter().enumerate() {
            let (vj, p) = (v.as_ptr().add(j * stride), _mm256_set1_ps(p));
            for (c, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj.add(8 * c)), *a);
            }
        }
        let inv = _mm256_set1_ps(inv);
        for (c, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), _mm256_mul_ps(*a, inv));
        }
    }

    #[inline]
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
    use super::*;

    /// Attention over cached rows matches a plain softmax-weighted sum, for the head widths
    /// with a SIMD path (64, 128, 256) and one without (48).
    #[test]
    fn attend_matches_naive_softmax() {
        for hd in [48, 64, 128, 256] {
            let (stride, len) = (3 * hd, 37);
            let k: Vec<f32> = (0..len * stride).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.05).collect();
            let v: Vec<f32> = (0..len * stride).map(|i| ((i * 7 % 31) as f32 - 15.0) * 0.1).collect();
            let q: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.3).sin()).collect();
            let scale = 1.0 / (hd as f32).sqrt();
            let s: Vec<f32> = (0..len).map(|j| q.iter().zip(&k[j * stride..]).map(|(a, b)| a * b).sum::<f32>() * scale).collect();
            let max = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let total: f32 = e.iter().sum();
            let mut out = vec![0f32; hd];
            attend(&q, &k, &v, stride, len, scale, &mut vec![0.0; len], &mut out);
            for (d, got) in out.iter().enumerate() {
                let want: f32 = (0..len).map(|j| e[j] / total * v[j * stride + d]).sum();
                assert!((want - got).abs() < 1e-4, "hd {hd} dim {d}: {want} vs {got}");
            }
        }
    }
}
