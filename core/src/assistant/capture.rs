//! Where push-to-talk audio comes from: the microphone, or a recorded clip.

use std::path::Path;
use std::sync::mpsc::Receiver;

use crate::audio::{read_wav, AudioError, Microphone, Recording};

/// A push-to-talk audio source.
pub trait Capture {
    /// The key went down: start recording.
    fn press(&mut self) -> Result<(), AudioError>;
    /// The key came up: the recording, at 16 kHz mono.
    fn release(&mut self) -> Result<Recording, AudioError>;
    /// Input levels (RMS, one per 50 ms) for a meter, if the source has them.
    fn levels(&mut self) -> Option<Receiver<f32>> {
        None
    }
}

impl Capture for Microphone {
    fn press(&mut self) -> Result<(), AudioError> {
        Microphone::press(self);
        Ok(())
    }

    fn release(&mut self) -> Result<Recording, AudioError> {
        Microphone::release(self)
    }

    fn levels(&mut self) -> Option<Receiver<f32>> {
        Some(Microphone::levels(self))
    }
}

/// A recorded question, "spoken" on every press (`murmur voice --in FILE.wav`): the key release
/// is the end of its speech.
pub struct Clip {
    audio: Vec<f32>,
}

impl Clip {
    /// The WAV file at `path` (any rate, depth and channel count).
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        Ok(Self { audio: read_wav(path)? })
    }
}

impl Capture for Clip {
    fn press(&mut self) -> Result<(), AudioError> {
        Ok(())
    }

    fn release(&mut self) -> Result<Recording, AudioError> {
        Ok(Recording { audio: self.audio.clone(), interrupted: None })
    }
}
