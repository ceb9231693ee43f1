//! The Slaney-style mel filter bank Whisper was trained with (librosa's `filters.mel` with
//! `htk=False`, `norm="slaney"`), computed the way librosa computes it so that the result is
//! bit-identical to openai-whisper's `mel_filters.npz`. whisper.cpp reads it from the model file.

use crate::SAMPLE_RATE;

/// FFT length of Whisper's STFT.
pub const N_FFT: usize = 400;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(f: f64) -> f64 {
    if f >= MIN_LOG_HZ {
        MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / logstep()
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    if m >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep() * (m - MIN_LOG_MEL)).exp()
    } else {
        F_SP * m
    }
}

/// `n_mels` triangular filters over the `N_FFT / 2 + 1` frequency bins, mel-bin major.
pub fn filters(n_mels: usize) -> Vec<f32> {
    let bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins).map(|i| i as f64 * SAMPLE_RATE as f64 / N_FFT as f64).collect();
    // numpy's linspace: i * step + start, with the last point set to the end exactly.
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    let step = (hi - lo) / (n_mels + 1) as f64;
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| if i == n_mels + 1 { hi } else { i as f64 * step + lo })
        .map(mel_to_hz)
        .collect();
    let mut out = Vec::with_capacity(n_mels * bins);
    for i in 0..n_mels {
        let (lower_d, upper_d) = (mel_f[i + 1] - mel_f[i], mel_f[i + 2] - mel_f[i + 1]);
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for &f in &fft_freqs {
            let lower = -(mel_f[i] - f) / lower_d;
            let upper = (mel_f[i + 2] - f) / upper_d;
            // numpy's `maximum(0, x)` keeps x = -0.0 (the first filter's first bin), and librosa
            // stores the triangle as f32, then scales it in f64 and stores f32 again.
            let m = lower.min(upper);
            let tri = if 0.0 > m { 0.0 } else { m } as f32;
            out.push((tri as f64 * enorm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-exact against openai-whisper's `assets/mel_filters.npz` (`mel_80`), summarised by
    /// checksums of the f32 bit patterns and a few entries taken from that file.
    #[test]
    fn matches_openai_whisper_mel_80() {
        let m = filters(80);
        assert_eq!(m.len(), 80 * 201);
        let bits: Vec<u64> = m.iter().map(|v| v.to_bits() as u64).collect();
        assert_eq!(m.iter().filter(|&&v| v > 0.0).count(), 391);
        assert_eq!(bits.iter().sum::<u64>(), 391_074_334_960);
        let weighted = bits.iter().enumerate().fold(0u128, |a, (i, &b)| (a + b as u128 * (i as u128 + 1)) % ((1 << 61) - 1));
        assert_eq!(weighted, 4_337_135_153_638_762);
        for (row, col, want) in [(0, 1, 0x3ccbaca4u32), (1, 2, 0x3cbb5d95), (40, 43, 0x3c716d72), (79, 192, 0x3b4f670e)] {
            assert_eq!(m[row * 201 + col].to_bits(), want, "filter {row}, bin {col}");
        }
    }
}
