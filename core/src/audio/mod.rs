//! Audio in and out: WAV files, microphone capture (cpal), resampling to Whisper's 16 kHz mono,
//! and playback (rodio) or WAV output of speech.

mod capture;
mod playback;

pub use capture::{Microphone, Recording};
pub use murmur_formats::resample::{resample, ResampleError};
pub use murmur_formats::wav::decode_wav;
pub use murmur_formats::SAMPLE_RATE;
pub use playback::{AudioOut, OnStart};

use std::path::{Path, PathBuf};
/// Length of one level-meter window, seconds (50 ms).
pub const LEVEL_WINDOW_S: f32 = 0.05;

/// What can go wrong with audio.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// An audio file could not be read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No microphone (or not the one asked for).
    #[error("{0}; typed questions still work")]
    NoInput(String),
    /// The input device refused to start.
    #[error("the microphone '{device}' could not be opened: {reason}; check that one is connected and free (typed questions still work)")]
    Device {
        /// The device.
        device: String,
        /// Why.
        reason: String,
    },
    /// No speaker (or not the one asked for).
    #[error("{0}; replies are shown but not spoken")]
    NoOutput(String),
    /// Resampling failed.
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// The audio of the WAV file at `path`, mixed down to mono and resampled to 16 kHz.
pub fn read_wav(path: &Path) -> Result<Vec<f32>, AudioError> {
    let file = std::fs::File::open(path)
        .map_err(|e| AudioError::File { path: path.to_path_buf(), reason: format!("cannot open it ({e})") })?;
    decode_wav(std::io::BufReader::new(file)).map_err(|reason| AudioError::File { path: path.to_path_buf(), reason })
}

/// Which way a device carries sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Microphones.
    Input,
    /// Speakers.
    Output,
}

impl Direction {
    fn noun(self) -> &'static str {
        match self {
            Self::Input => "microphone",
            Self::Output => "audio output device",
        }
    }

    fn devices(self, host: &cpal::Host) -> Vec<cpal::Device> {
        use cpal::traits::HostTrait;
        let all: Option<Box<dyn Iterator<Item = cpal::Device>>> = match self {
            Self::Input => host.input_devices().ok().map(|d| Box::new(d) as _),
            Self::Output => host.output_devices().ok().map(|d| Box::new(d) as _),
        };
        all.map(Iterator::collect).unwrap_or_default()
    }
}

/// Names of the default audio host's devices that carry sound `direction`.
pub fn device_names(direction: Direction) -> Vec<String> {
    use cpal::traits::DeviceTrait;
    direction.devices(&cpal::default_host()).iter().filter_map(|d| d.name().ok()).collect()
}

/// The device called `name`, or the default one; the message says what exists when there is
/// no such device.
fn find_device(direction: Direction, name: Option<&str>) -> Result<cpal::Device, String> {
    use cpal::traits::{DeviceTrait, HostTrait};
    let host = cpal::default_host();
    let noun = direction.noun();
    match name {
        Some(name) => direction.devices(&host).into_iter().find(|d| d.name().is_ok_and(|n| n == name)).ok_or_else(|| {
            let found = device_names(direction);
            format!("no {noun} named '{name}' (found: {})", if found.is_empty() { "none".into() } else { found.join(", ") })
        }),
        None => match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .ok_or_else(|| format!("no {noun} found")),
    }
}

/// Samples in one level window ([`LEVEL_WINDOW_S`]) at `rate`.
pub fn level_window(rate: u32) -> usize {
    ((rate as f32 * LEVEL_WINDOW_S) as usize).max(1)
}

/// RMS level of each 50 ms window of `audio` (sampled at `rate`; the last window may be short),
/// for meters and silence checks.
pub fn levels(audio: &[f32], rate: u32) -> impl Iterator<Item = f32> + '_ {
    audio.chunks(level_window(rate)).map(|w| (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_rms_per_window() {
        let tone: Vec<f32> = (0..1600).map(|i| if i % 2 == 0 { 0.5 } else { -0.5 }).collect();
        let l: Vec<f32> = levels(&tone, 16_000).collect();
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|&v| (v - 0.5).abs() < 1e-6));
    }
}
