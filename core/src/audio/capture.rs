//! Push-to-talk microphone capture with cpal.
//!
//! The input stream runs from [`Microphone::open`] on, keeping the last 200 ms in a pre-roll
//! ring so the first syllable spoken with the key press is not lost; [`Microphone::release`]
//! keeps recording for a short grace period so the last one is not clipped either. A device
//! that vanishes mid-recording ends the recording with what was captured so far.

use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{SampleFormat, SizedSample};

use super::{find_device, resample, AudioError, Direction, LEVEL_WINDOW_S, SAMPLE_RATE};
use crate::sync::lock;

/// Audio kept from before the key press.
pub const PRE_ROLL: Duration = Duration::from_millis(200);
/// Audio kept after the key release.
pub const GRACE: Duration = Duration::from_millis(250);

/// One push-to-talk recording.
#[derive(Debug, Clone)]
pub struct Recording {
    /// 16 kHz mono samples.
    pub audio: Vec<f32>,
    /// Set when the device failed mid-recording: what happened (the audio so far is kept).
    pub interrupted: Option<String>,
}

#[derive(Default)]
struct MicState {
    pre_roll: VecDeque<f32>,
    recording: Option<Vec<f32>>,
    interrupted: Option<String>,
    level_sum: f32,
    level_count: usize,
    levels: Option<Sender<f32>>,
}

/// An open input device.
pub struct Microphone {
    _stream: cpal::Stream,
    capture: Arc<Mutex<MicState>>,
    rate: u32,
    name: String,
}

impl Microphone {
    /// Opens `device` (by name), or the default input device.
    pub fn open(device: Option<&str>) -> Result<Self, AudioError> {
        let dev = find_device(Direction::Input, device).map_err(AudioError::NoInput)?;
        let name = dev.name().unwrap_or_else(|_| "default".into());
        let dev_err = |reason: String| AudioError::Device { device: name.clone(), reason };
        let supported = dev.default_input_config().map_err(|e| dev_err(e.to_string()))?;
        let (rate, channels, format) = (supported.sample_rate().0, supported.channels() as usize, supported.sample_format());
        let config: cpal::StreamConfig = supported.into();
        let capture = Arc::new(Mutex::new(MicState::default()));
        let stream = match format {
            SampleFormat::F32 => build::<f32>(&dev, &config, channels, rate, &capture),
            SampleFormat::I16 => build::<i16>(&dev, &config, channels, rate, &capture),
            SampleFormat::U16 => build::<u16>(&dev, &config, channels, rate, &capture),
            SampleFormat::I32 => build::<i32>(&dev, &config, channels, rate, &capture),
            other => return Err(dev_err(format!("its sample format {other} is not supported"))),
        }
        .map_err(|e| dev_err(e.to_string()))?;
        stream.play().map_err(|e| dev_err(e.to_string()))?;
        tracing::info!(device = %name, rate, channels, "microphone open");
        Ok(Self { _stream: stream, capture, rate, name })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// RMS levels, one per 50 ms, from now on (for a level meter).
    pub fn levels(&self) -> Receiver<f32> {
        let (tx, rx) = channel();
        lock(&self.capture).levels = Some(tx);
        rx
    }

    /// Starts a recording with the pre-roll in front.
    pub fn press(&self) {
        let mut c = lock(&self.capture);
        let pre: Vec<f32> = c.pre_roll.drain(..).collect();
        c.recording = Some(pre);
        c.interrupted = None;
    }

    /// Whether the input stream has failed (the microphone was unplugged or its sound server
    /// went away) since the recording started.
    pub fn is_interrupted(&self) -> bool {
        lock(&self.capture).interrupted.is_some()
    }

    /// What the recording holds so far, at 16 kHz (it goes on).
    pub fn so_far(&self) -> Result<Vec<f32>, AudioError> {
        let raw = lock(&self.capture).recording.clone().unwrap_or_default();
        Ok(resample(&raw, self.rate, SAMPLE_RATE)?)
    }

    /// Ends the recording after the grace period (a user who lets go while still speaking
    /// keeps their last syllable); the audio comes back at 16 kHz.
    pub fn release(&self) -> Result<Recording, AudioError> {
        self.release_after(GRACE)
    }

    /// Ends the recording at once: the user had gone quiet before letting go.
    pub fn release_quiet(&self) -> Result<Recording, AudioError> {
        self.release_after(Duration::ZERO)
    }

    fn release_after(&self, grace: Duration) -> Result<Recording, AudioError> {
        if lock(&self.capture).interrupted.is_none() {
            std::thread::sleep(grace);
        }
        let (raw, interrupted) = {
            let mut c = lock(&self.capture);
            (c.recording.take().unwrap_or_default(), c.interrupted.take())
        };
        if let Some(why) = &interrupted {
            tracing::warn!(device = %self.name, "recording interrupted: {why}");
        }
        Ok(Recording { audio: resample(&raw, self.rate, SAMPLE_RATE)?, interrupted })
    }
}

fn build<T>(
    dev: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    rate: u32,
    capture: &Arc<Mutex<MicState>>,
) -> Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample,
    f32: cpal::FromSample<T>,
{
    let pre_roll_len = (rate as f32 * PRE_ROLL.as_secs_f32()) as usize;
    let window = (rate as f32 * LEVEL_WINDOW_S) as usize;
    let (data, error) = (Arc::clone(capture), Arc::clone(capture));
    dev.build_input_stream(
        config,
        move |samples: &[T], _: &cpal::InputCallbackInfo| {
            let mut c = lock(&data);
            for frame in samples.chunks(channels) {
                let v = frame.iter().map(|&s| <f32 as cpal::FromSample<T>>::from_sample_(s)).sum::<f32>() / frame.len() as f32;
                c.push(v, pre_roll_len, window);
            }
        },
        move |e| {
            lock(&error).interrupted = Some(e.to_string());
        },
        None,
    )
}

impl MicState {
    fn push(&mut self, v: f32, pre_roll_len: usize, window: usize) {
        match &mut self.recording {
            Some(rec) => rec.push(v),
            None => {
                if self.pre_roll.len() == pre_roll_len {
                    self.pre_roll.pop_front();
                }
                self.pre_roll.push_back(v);
            }
        }
        self.level_sum += v * v;
        self.level_count += 1;
        if self.level_count >= window {
            let rms = (self.level_sum / self.level_count as f32).sqrt();
            if self.levels.as_ref().is_some_and(|tx| tx.send(rms).is_err()) {
                self.levels = None;
            }
            self.level_sum = 0.0;
            self.level_count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pre-roll keeps only the newest samples, a press moves them in front of the
    /// recording, and levels come one per window.
    #[test]
    fn pre_roll_then_recording() {
        let mut c = MicState::default();
        let (tx, rx) = channel();
        c.levels = Some(tx);
        for i in 0..10 {
            c.push(i as f32, 4, 5);
        }
        assert_eq!(c.pre_roll, [6.0, 7.0, 8.0, 9.0]);
        c.recording = Some(c.pre_roll.drain(..).collect());
        c.push(10.0, 4, 5);
        assert_eq!(c.recording.as_deref(), Some(&[6.0, 7.0, 8.0, 9.0, 10.0][..]));
        assert_eq!(rx.try_iter().count(), 2);
    }

    /// Asking for a device that does not exist says so and lists what exists.
    #[test]
    fn unknown_device_is_a_clear_error() {
        let err = Microphone::open(Some("no-such-microphone")).err().expect("no such device");
        let msg = err.to_string();
        assert!(msg.contains("no microphone named 'no-such-microphone'") && msg.contains("typed questions still work"), "{msg}");
    }
}
