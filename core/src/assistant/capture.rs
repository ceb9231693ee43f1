//! Where push-to-talk audio comes from: the microphone, or a recorded clip.

use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audio::{levels, read_wav, AudioError, Microphone, Recording, LEVEL_WINDOW_S, SAMPLE_RATE};
use crate::sync::lock;

/// A push-to-talk audio source.
pub trait Capture {
    /// The key went down: start recording.
    fn press(&mut self) -> Result<(), AudioError>;
    /// The key came up: the recording, at 16 kHz mono. `speaking`: the user may still be
    /// saying their last word (the level meter did not show a pause).
    fn release(&mut self, speaking: bool) -> Result<Recording, AudioError>;
    /// Input levels (RMS, one per 50 ms) for a meter, if the source has them. They also tell
    /// the assistant when the user pauses (to transcribe ahead).
    fn levels(&mut self) -> Option<Receiver<f32>> {
        None
    }
    /// What was recorded since the press, at 16 kHz mono, with the key still held; `None`
    /// where the source cannot tell.
    fn so_far(&mut self) -> Option<Vec<f32>> {
        None
    }
}

impl Capture for Microphone {
    fn press(&mut self) -> Result<(), AudioError> {
        Microphone::press(self);
        Ok(())
    }

    fn release(&mut self, speaking: bool) -> Result<Recording, AudioError> {
        if speaking {
            Microphone::release(self)
        } else {
            Microphone::release_quiet(self)
        }
    }

    fn levels(&mut self) -> Option<Receiver<f32>> {
        Some(Microphone::levels(self))
    }

    fn so_far(&mut self) -> Option<Vec<f32>> {
        Microphone::so_far(self).ok()
    }
}

/// A recorded question, "spoken" on every press (`murmur voice --in FILE.wav`). By default all
/// of it is there at once and the key release is the end of its speech; [`Clip::in_real_time`]
/// plays it as a user speaks it instead.
pub struct Clip {
    audio: Arc<Vec<f32>>,
    /// When the key went down, for a clip spoken in real time.
    pressed: Option<Arc<Mutex<Option<Instant>>>>,
}

impl Clip {
    /// The WAV file at `path` (any rate, depth and channel count).
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        Ok(Self { audio: Arc::new(read_wav(path)?), pressed: None })
    }

    /// Speaks the clip from each press on, at the pace it was recorded: a release hands over
    /// what was said by then, and the level meter follows it.
    pub fn in_real_time(self) -> Self {
        Self { pressed: Some(Arc::new(Mutex::new(None))), ..self }
    }

    /// Seconds of the clip.
    pub fn seconds(&self) -> f64 {
        self.audio.len() as f64 / f64::from(SAMPLE_RATE)
    }

    /// Seconds of quiet after the clip's last word: how long before the clip's end (its key
    /// release) the speaker stopped speaking.
    pub fn quiet_tail(&self) -> f64 {
        f64::from(super::listen_ahead::quiet_tail_seconds(&self.audio))
    }

    /// The clip up to now, or all of it when it is not spoken in real time.
    fn said(&self) -> Vec<f32> {
        let end = match self.pressed.as_ref().and_then(|p| *lock(p)) {
            Some(at) => ((at.elapsed().as_secs_f64() * f64::from(SAMPLE_RATE)) as usize).min(self.audio.len()),
            None => self.audio.len(),
        };
        self.audio[..end].to_vec()
    }
}

impl Capture for Clip {
    fn press(&mut self) -> Result<(), AudioError> {
        if let Some(pressed) = &self.pressed {
            *lock(pressed) = Some(Instant::now());
        }
        Ok(())
    }

    fn release(&mut self, _speaking: bool) -> Result<Recording, AudioError> {
        let audio = self.said();
        if let Some(pressed) = &self.pressed {
            *lock(pressed) = None;
        }
        Ok(Recording { audio, interrupted: None })
    }

    /// A clip spoken in real time has levels: its own, window by window, as it is spoken.
    fn levels(&mut self) -> Option<Receiver<f32>> {
        let pressed = Arc::clone(self.pressed.as_ref()?);
        let windows: Vec<f32> = levels(&self.audio, SAMPLE_RATE).collect();
        let (tx, rx) = channel();
        let window = Duration::from_secs_f32(LEVEL_WINDOW_S);
        // Silence while the key is up, like a quiet room; the thread ends with the receiver.
        let meter = move || loop {
            std::thread::sleep(window);
            let rms = lock(&pressed).map_or(0.0, |at| {
                let done = (at.elapsed().as_secs_f32() / LEVEL_WINDOW_S) as usize;
                done.checked_sub(1).and_then(|i| windows.get(i)).copied().unwrap_or(0.0)
            });
            if tx.send(rms).is_err() {
                return;
            }
        };
        std::thread::Builder::new().name("murmur-clip".into()).spawn(meter).ok()?;
        Some(rx)
    }

    fn so_far(&mut self) -> Option<Vec<f32>> {
        self.pressed.is_some().then(|| self.said())
    }
}
