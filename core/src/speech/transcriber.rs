//! A warm Whisper model: one context and one decoding state, reused for every utterance.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::time::Instant;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

use super::ggml::GgmlWhisper;
use crate::audio::{levels, SAMPLE_RATE};

/// Shortest recording worth transcribing.
pub const MIN_SECONDS: f32 = 0.3;
/// A recording whose loudest 50 ms stays under this RMS (about -50 dBFS) is silence.
const SILENCE_RMS: f32 = 0.003;
/// Segments whose no-speech probability is above this are dropped.
const NO_SPEECH_PROB: f32 = 0.6;
/// Encoder positions per second of audio (1500 for Whisper's 30-second window).
const CTX_PER_SECOND: f32 = 50.0;
/// Fewest encoder positions used (about 10 s): shorter windows make tiny.en repeat words.
const MIN_AUDIO_CTX: usize = 512;

/// Decoder beams unless configured otherwise (whisper.cpp's own default).
pub const DEFAULT_BEAM: usize = 5;

/// What can go wrong turning speech into text.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// The model file is missing, unreadable or not a usable ggml Whisper model.
    #[error("speech model {path}: {reason}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong (and what to do).
        reason: String,
    },
    /// The model file is not there: the catalog's speech model is fetched and converted to make
    /// it (front ends say how).
    #[error("the speech model is not installed ({} is missing)", path.display())]
    NotInstalled {
        /// The model file.
        path: PathBuf,
    },
    /// The recording is too short to hold a word.
    #[error("the recording is only {seconds:.2} s long; hold the key while you speak")]
    TooShort {
        /// Its length.
        seconds: f32,
    },
    /// Nothing but silence or noise was heard.
    #[error("no speech was heard; check the microphone and speak closer to it")]
    NoSpeech,
    /// whisper.cpp failed.
    #[error("speech recognition failed: {0}")]
    Whisper(String),
}

/// How to run the model.
#[derive(Debug, Clone)]
pub struct SpeechConfig {
    /// CPU threads for whisper.cpp.
    pub threads: usize,
    /// Encode Whisper's whole 30-second window even for short clips (slower; the shortened
    /// window is the default).
    pub full_window: bool,
    /// Encoder positions to use instead of the computed ones (50 per second of audio).
    pub audio_ctx: Option<usize>,
    /// Beam width of the decoder (1: greedy). Five beams cost tens of milliseconds on a short
    /// question and fix words greedy decoding gets wrong ("capital and friends").
    pub beam_size: usize,
    /// What a multilingual model hears: a Whisper language code (`en`, `fr`), or `auto` to
    /// detect it. An English-only model always hears English.
    pub language: String,
}

/// The language a multilingual model hears unless told otherwise.
pub const DEFAULT_LANGUAGE: &str = "en";

impl Default for SpeechConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()).min(4),
            full_window: false,
            audio_ctx: None,
            beam_size: DEFAULT_BEAM,
            language: DEFAULT_LANGUAGE.into(),
        }
    }
}

/// Where the time of one transcription went.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SpeechTimings {
    /// Length of the audio, seconds.
    pub audio_s: f32,
    /// Log-mel spectrogram, ms.
    pub mel_ms: f64,
    /// Encoder, ms.
    pub encode_ms: f64,
    /// Decoder, ms.
    pub decode_ms: f64,
    /// Encoder positions used (1500 is the full 30-second window).
    pub audio_ctx: usize,
}

/// The words heard in one recording.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// The text, trimmed, without non-speech captions.
    pub text: String,
    /// Where the time went.
    pub timings: SpeechTimings,
}

/// A loaded Whisper model, with a fresh decoding state ready for the next utterance.
///
/// Each transcription uses up its state: a reused whisper.cpp state (after another clip's
/// beam search, at another window length) decodes the same audio differently from run to run.
/// Making one takes about 25 ms, so [`Transcriber::prepare`] makes the next one while idle.
pub struct Transcriber {
    ctx: WhisperContext,
    state: Option<WhisperState>,
    config: SpeechConfig,
    max_ctx: usize,
}

impl Transcriber {
    /// Loads the ggml Whisper model at `path` (checked before whisper.cpp sees it).
    pub fn load(path: &Path, config: SpeechConfig) -> Result<Self, SpeechError> {
        let model_err = |reason: String| SpeechError::Model { path: path.to_path_buf(), reason };
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SpeechError::NotInstalled { path: path.to_path_buf() },
            _ => model_err(e.to_string()),
        })?;
        let checked = GgmlWhisper::parse(&bytes).map_err(|e| model_err(e.0))?;
        let max_ctx = checked.hparams.n_audio_ctx;
        whisper_rs::install_logging_hooks();
        let ctx = WhisperContext::new_from_buffer_with_params(&bytes, WhisperContextParameters::default())
            .map_err(|e| model_err(format!("whisper.cpp could not load it: {e}")))?;
        let mut me = Self { ctx, state: None, config, max_ctx };
        me.prepare()?;
        tracing::info!(model = %path.display(), "speech model loaded");
        Ok(me)
    }

    /// Makes the fresh decoding state the next transcription will use, if there is none yet
    /// (call it while idle; otherwise the next transcription makes it).
    pub fn prepare(&mut self) -> Result<(), SpeechError> {
        if self.state.is_none() {
            self.state = Some(self.ctx.create_state().map_err(|e| SpeechError::Whisper(e.to_string()))?);
        }
        Ok(())
    }

    /// Encoder positions for `seconds` of audio instead of the whole 30-second window: the
    /// clip plus 1.5 s, rounded up to 64, and at least [`MIN_AUDIO_CTX`]. A window that ends
    /// right after the speech makes tiny.en repeat itself; this margin did not, on every clip
    /// tried (see the speech tests).
    fn audio_ctx(&self, seconds: f32) -> usize {
        if self.config.full_window {
            return self.max_ctx;
        }
        if let Some(ctx) = self.config.audio_ctx {
            return ctx.clamp(1, self.max_ctx);
        }
        let wanted = ((seconds + 1.5) * CTX_PER_SECOND).ceil() as usize;
        wanted.div_ceil(64).saturating_mul(64).clamp(MIN_AUDIO_CTX, self.max_ctx)
    }

    /// Transcribes 16 kHz mono audio. Silence, noise and too-short clips give an error
    /// rather than words the user never said.
    pub fn transcribe(&mut self, audio: &[f32]) -> Result<Transcript, SpeechError> {
        let seconds = audio.len() as f32 / SAMPLE_RATE as f32;
        if seconds < MIN_SECONDS {
            return Err(SpeechError::TooShort { seconds });
        }
        if levels(audio, SAMPLE_RATE).fold(0f32, f32::max) < SILENCE_RMS {
            return Err(SpeechError::NoSpeech);
        }
        let audio_ctx = self.audio_ctx(seconds);
        let strategy = match self.config.beam_size {
            0 | 1 => SamplingStrategy::Greedy { best_of: 1 },
            beams => SamplingStrategy::BeamSearch { beam_size: beams as i32, patience: -1.0 },
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(self.config.threads as i32);
        let language = if self.ctx.is_multilingual() { self.config.language.clone() } else { "en".into() };
        params.set_language(Some(&language));
        params.set_audio_ctx(audio_ctx as i32);
        // Timestamp decoding (Whisper's usual mode) is what makes the no-speech probability
        // meaningful: without it, noise comes out as a word.
        params.set_no_context(true);
        params.set_single_segment(true);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        let mut marks = Marks::default();
        // SAFETY: both callbacks only write `marks`, which outlives the `full` call below.
        unsafe {
            params.set_start_encoder_callback(Some(on_encoder_begin));
            params.set_start_encoder_callback_user_data(&mut marks as *mut Marks as *mut c_void);
            params.set_filter_logits_callback(Some(on_logits));
            params.set_filter_logits_callback_user_data(&mut marks as *mut Marks as *mut c_void);
        }
        self.prepare()?;
        let mut state = self.state.take().expect("prepared");
        let start = Instant::now();
        state.full(params, audio).map_err(|e| SpeechError::Whisper(e.to_string()))?;
        let end = Instant::now();
        let mut text = String::new();
        for segment in state.as_iter() {
            if segment.no_speech_probability() > NO_SPEECH_PROB {
                tracing::debug!(p = segment.no_speech_probability(), "dropped a no-speech segment");
                continue;
            }
            text.push_str(&segment.to_str_lossy().map_err(|e| SpeechError::Whisper(e.to_string()))?);
        }
        let text = strip_captions(&text);
        if !text.chars().any(char::is_alphanumeric) {
            return Err(SpeechError::NoSpeech);
        }
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1e3;
        let enc_start = marks.encoder_begin.unwrap_or(start);
        let dec_start = marks.first_logits.unwrap_or(end);
        let timings = SpeechTimings {
            audio_s: seconds,
            mel_ms: ms(start, enc_start),
            encode_ms: ms(enc_start, dec_start),
            decode_ms: ms(dec_start, end),
            audio_ctx,
        };
        Ok(Transcript { text, timings })
    }
}

/// When whisper.cpp began encoding and first handed out logits (the end of encoding).
#[derive(Default)]
struct Marks {
    encoder_begin: Option<Instant>,
    first_logits: Option<Instant>,
}

unsafe extern "C" fn on_encoder_begin(
    _: *mut whisper_rs::WhisperSysContext,
    _: *mut whisper_rs::WhisperSysState,
    data: *mut c_void,
) -> bool {
    // SAFETY: `data` is the `Marks` set in `transcribe`, alive for the whole call.
    let marks = unsafe { &mut *(data as *mut Marks) };
    marks.encoder_begin.get_or_insert_with(Instant::now);
    true
}

unsafe extern "C" fn on_logits(
    _: *mut whisper_rs::WhisperSysContext,
    _: *mut whisper_rs::WhisperSysState,
    _: *const whisper_rs::WhisperTokenData,
    _: std::os::raw::c_int,
    _: *mut f32,
    data: *mut c_void,
) {
    // SAFETY: as in `on_encoder_begin`.
    let marks = unsafe { &mut *(data as *mut Marks) };
    marks.first_logits.get_or_insert_with(Instant::now);
}

/// Removes the captions Whisper writes for non-speech sounds — `(water running)`,
/// `[MUSIC]`, `*applause*` — and collapses the whitespace left behind.
pub fn strip_captions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut closing: Option<char> = None;
    for c in text.chars() {
        match (closing, c) {
            (Some(end), c) if c == end => closing = None,
            (Some(_), _) => {}
            (None, '(') => closing = Some(')'),
            (None, '[') => closing = Some(']'),
            (None, '*') => closing = Some('*'),
            (None, c) => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_are_removed() {
        assert_eq!(strip_captions(" (water running) "), "");
        assert_eq!(strip_captions("[MUSIC] Hello *laughs* there."), "Hello there.");
        assert_eq!(strip_captions(" Ask not what your country can do."), "Ask not what your country can do.");
    }
}
