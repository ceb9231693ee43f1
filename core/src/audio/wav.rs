//! WAV files at any rate, depth and channel count, read as 16 kHz mono f32.

use std::path::Path;

use super::{resample, AudioError, SAMPLE_RATE};

/// The audio of the WAV file at `path`, mixed down to mono and resampled to 16 kHz.
pub fn read_wav(path: &Path) -> Result<Vec<f32>, AudioError> {
    let err = |reason: String| AudioError::File { path: path.to_path_buf(), reason };
    let mut reader = hound::WavReader::open(path).map_err(|e| err(format!("not a readable WAV file ({e})")))?;
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<Result<_, _>>()
        }
    }
    .map_err(|e| err(format!("the audio data is damaged ({e})")))?;
    let mono: Vec<f32> = samples.chunks(channels).map(|frame| frame.iter().sum::<f32>() / frame.len() as f32).collect();
    resample(&mono, spec.sample_rate, SAMPLE_RATE)
}
