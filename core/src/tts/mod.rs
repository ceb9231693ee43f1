//! Text to speech: a [`Synthesizer`] (espeak-ng by default), and the text side of speaking a
//! streamed reply ([`SentenceSplitter`], [`speakable`]).

mod espeak;
mod sentences;

pub use espeak::{Espeak, RATE_RANGE};
pub use sentences::{speakable, SentenceSplitter};

/// The voice used unless the user picks another.
pub const DEFAULT_VOICE: &str = "en-us";
/// The default speaking rate, words per minute.
pub const DEFAULT_RATE: u32 = 175;

/// What can go wrong synthesizing speech.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// A voice or rate the engine does not offer.
    #[error("{0}")]
    Setting(String),
    /// The engine failed or is not installed.
    #[error("{0}")]
    Engine(String),
}

/// A speech synthesizer: text in, mono audio out, streamed.
///
/// Implementations may produce a sentence at once (a neural voice) or in small chunks
/// (espeak-ng); callers only see chunks.
pub trait Synthesizer: Send {
    /// The rate of the samples it produces.
    fn sample_rate(&self) -> u32;

    /// Speaks `text`, handing each chunk of samples (in [-1, 1]) to `out` as it is made; `out`
    /// returns false to stop early (which is not an error).
    fn synthesize(&mut self, text: &str, out: &mut dyn FnMut(&[f32]) -> bool) -> Result<(), TtsError>;

    /// Speaks `text` into one buffer.
    fn synthesize_all(&mut self, text: &str) -> Result<Vec<f32>, TtsError> {
        let mut all = Vec::new();
        self.synthesize(text, &mut |chunk| {
            all.extend_from_slice(chunk);
            true
        })?;
        Ok(all)
    }
}

/// Which synthesizer and how it sounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceConfig {
    /// Voice name (espeak-ng: `en-us`, `en-gb`, …).
    pub voice: String,
    /// Words per minute.
    pub rate: u32,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self { voice: DEFAULT_VOICE.into(), rate: DEFAULT_RATE }
    }
}

impl VoiceConfig {
    /// The synthesizer this configuration describes.
    pub fn synthesizer(&self) -> Result<Box<dyn Synthesizer>, TtsError> {
        Ok(Box::new(Espeak::new(&self.voice, self.rate)?))
    }
}
