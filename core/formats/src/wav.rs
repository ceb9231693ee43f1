//! WAV files at any rate, depth and channel count, read as 16 kHz mono f32.

use std::io::Read;

use crate::resample::resample;
use crate::SAMPLE_RATE;

/// The lowest and highest sample rates accepted (telephone audio to studio masters).
const RATES: std::ops::RangeInclusive<u32> = 4_000..=384_000;

/// The audio of a WAV stream, mixed down to mono and resampled to 16 kHz; the error says
/// what is wrong with the data.
pub fn decode_wav(input: impl Read) -> Result<Vec<f32>, String> {
    let reader = hound::WavReader::new(input).map_err(|e| format!("not a readable WAV file ({e})"))?;
    let spec = reader.spec();
    if !RATES.contains(&spec.sample_rate) {
        return Err(format!(
            "its sample rate, {} Hz, is outside the {}–{} Hz Murmur reads",
            spec.sample_rate,
            RATES.start(),
            RATES.end()
        ));
    }
    let channels = spec.channels.max(1) as usize;
    let damaged = |e: hound::Error| format!("the audio data is damaged ({e})");
    // Samples are collected as they are read, not into a buffer sized by the header's length
    // (a damaged header may claim gigabytes).
    let mut samples = Vec::new();
    match spec.sample_format {
        hound::SampleFormat::Float => {
            // Float files may hold anything: NaN and infinities become silence and the rest is
            // clipped to full scale (the resampler's FFT fails on non-finite input).
            for s in reader.into_samples::<f32>() {
                let v = s.map_err(damaged)?;
                samples.push(if v.is_finite() { v.clamp(-1.0, 1.0) } else { 0.0 });
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            for s in reader.into_samples::<i32>() {
                samples.push(s.map_err(damaged)? as f32 * scale);
            }
        }
    }
    let mono: Vec<f32> = samples.chunks(channels).map(|frame| frame.iter().sum::<f32>() / frame.len() as f32).collect();
    resample(&mono, spec.sample_rate, SAMPLE_RATE).map_err(|e| e.to_string())
}
