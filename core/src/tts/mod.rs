//! Text to speech: a [`Synthesizer`] (a Piper neural voice by default, espeak-ng as the fast
//! fallback), and the text side of speaking a streamed reply ([`SentenceSplitter`],
//! [`speakable`]).

mod espeak;
mod piper;
mod reasoning;
mod sentences;

use std::fmt;
use std::str::FromStr;

pub use espeak::{espeak_voices, Espeak};
pub use piper::{Piper, PiperFiles, PiperOptions};
pub use reasoning::ReasoningFilter;
pub use sentences::{speakable, SentenceSplitter};

/// The voice used unless the user picks another.
pub const DEFAULT_VOICE: &str = "piper:joe";
/// The espeak-ng voice spoken when a Piper voice cannot be.
pub const FALLBACK_VOICE: &str = "en-us";
/// The default speaking rate, words per minute (a Piper voice's own pace).
pub const DEFAULT_RATE: u32 = 175;
/// Speaking rates every voice takes, words per minute.
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = espeak::ESPEAK_RATES;

/// Refuses a rate outside [`RATE_RANGE`].
fn check_rate(rate: u32) -> Result<(), TtsError> {
    if RATE_RANGE.contains(&rate) {
        return Ok(());
    }
    Err(TtsError::Setting(format!(
        "a speaking rate of {rate} words per minute is out of range ({}–{})",
        RATE_RANGE.start(),
        RATE_RANGE.end()
    )))
}

/// What can go wrong synthesizing speech.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// A voice or rate the engine does not offer.
    #[error("{0}")]
    Setting(String),
    /// The engine failed.
    #[error("{0}")]
    Engine(String),
    /// A file the voice needs is missing: the catalog's model `model` installs it (front ends
    /// say how).
    #[error("{what} is not installed ({} is missing)", path.display())]
    NotInstalled {
        /// What is missing, in words.
        what: &'static str,
        /// The file that is missing.
        path: std::path::PathBuf,
        /// The catalog model that installs it.
        model: String,
    },
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

/// A voice as the user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceName {
    /// `piper:NAME`: a Piper voice of the catalog (`piper:joe`).
    Piper(String),
    /// `espeak:VOICE`: an espeak-ng voice (`espeak:en-us`); a bare `VOICE` means the same.
    Espeak(String),
}

impl FromStr for VoiceName {
    type Err = TtsError;

    fn from_str(s: &str) -> Result<Self, TtsError> {
        let s = s.trim();
        match s.split_once(':') {
            Some(("piper", name)) if !name.is_empty() => Ok(Self::Piper(name.into())),
            Some(("espeak", name)) if !name.is_empty() => Ok(Self::Espeak(name.into())),
            None if !s.is_empty() => Ok(Self::Espeak(s.into())),
            _ => Err(TtsError::Setting(format!("'{s}' is not a voice: say piper:NAME or espeak:VOICE"))),
        }
    }
}

impl fmt::Display for VoiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Piper(name) => write!(f, "piper:{name}"),
            Self::Espeak(name) => write!(f, "espeak:{name}"),
        }
    }
}

/// One voice Murmur can speak with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct VoiceInfo {
    /// Its name for `--voice` and Settings (`piper:joe`).
    pub id: String,
    /// What it is, for a list.
    pub description: String,
    /// Whether its files are on this machine (espeak-ng voices always are).
    pub installed: bool,
}

/// Every voice: the catalog's Piper voices first, then espeak-ng's.
pub fn voices() -> Vec<VoiceInfo> {
    let manifest = crate::models::Manifest::builtin();
    let piper = manifest.with_role(crate::models::Role::Voice).filter_map(|m| {
        let name = piper::piper_name(m)?;
        let files = PiperFiles::of(m)?;
        let installed = [&files.model, &files.config, &files.runtime].iter().all(|p| p.exists());
        Some(VoiceInfo { id: VoiceName::Piper(name.into()).to_string(), description: m.name.clone(), installed })
    });
    let espeak = espeak_voices().unwrap_or_default().into_iter().map(|v| VoiceInfo {
        id: VoiceName::Espeak(v.clone()).to_string(),
        description: format!("espeak-ng, {v}"),
        installed: true,
    });
    piper.chain(espeak).collect()
}

/// Which voice and how fast it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceConfig {
    /// The voice, as [`VoiceName`] parses it (`piper:joe`, `espeak:en-us`).
    pub voice: String,
    /// Words per minute.
    pub rate: u32,
}

/// A synthesizer ready to speak, and why it is not the voice asked for, when it is not.
pub struct LoadedVoice {
    /// What speaks.
    pub synthesizer: Box<dyn Synthesizer>,
    /// Set when the Piper voice asked for could not start and espeak-ng speaks instead.
    pub fallback: Option<TtsError>,
}

impl LoadedVoice {
    /// What to tell the user, once, when espeak-ng speaks instead of the voice asked for.
    pub fn fallback_notice(&self) -> Option<String> {
        self.fallback.as_ref().map(|why| format!("{why}; speaking with espeak-ng instead"))
    }
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self { voice: DEFAULT_VOICE.into(), rate: DEFAULT_RATE }
    }
}

impl VoiceConfig {
    /// The synthesizer this configuration describes, loaded and warm. A Piper voice whose files
    /// or runtime are missing or fail to load gives way to espeak-ng, and says why in
    /// [`LoadedVoice::fallback`]; a voice or rate that does not exist is an error.
    pub fn synthesizer(&self) -> Result<LoadedVoice, TtsError> {
        let name = match self.voice.parse::<VoiceName>()? {
            VoiceName::Espeak(voice) => {
                return Ok(LoadedVoice { synthesizer: Box::new(Espeak::new(&voice, self.rate)?), fallback: None })
            }
            VoiceName::Piper(name) => name,
        };
        let files =
            PiperFiles::catalog(&name).ok_or_else(|| TtsError::Setting(format!("there is no Piper voice named '{name}'")))?;
        match Piper::load(&files, PiperOptions { rate: self.rate, ..PiperOptions::default() }) {
            Ok(piper) => Ok(LoadedVoice { synthesizer: Box::new(piper), fallback: None }),
            Err(e @ TtsError::Setting(_)) => Err(e),
            Err(why) => {
                tracing::warn!("the Piper voice '{name}' cannot speak, espeak-ng will: {why}");
                Ok(LoadedVoice { synthesizer: Box::new(Espeak::new(FALLBACK_VOICE, self.rate)?), fallback: Some(why) })
            }
        }
    }
}
