//! espeak-ng through its C library (`libespeak-ng`), in synchronous retrieval mode.
//!
//! The library keeps one global synthesizer per process and is not thread-safe, so every
//! [`Espeak`] shares it behind one lock; each call sets its own voice and rate first. Audio comes
//! back through a callback in chunks of about 50 ms, which are handed on as they are made.

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::{Synthesizer, TtsError};
use crate::sync::lock;

/// `AUDIO_OUTPUT_SYNCHRONOUS`: the callback receives audio and `espeak_Synth` returns when done.
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// Callback buffer length in milliseconds.
const BUFFER_MS: c_int = 50;
/// `espeakINITIALIZE_DONT_EXIT`: report a missing data directory instead of exiting.
const INITIALIZE_DONT_EXIT: c_int = 0x8000;
/// `espeakCHARS_UTF8`.
const CHARS_UTF8: c_uint = 1;
/// `POS_CHARACTER`.
const POS_CHARACTER: c_int = 1;
/// `espeakRATE`.
const PARAM_RATE: c_int = 1;
/// `EE_OK`.
const EE_OK: c_int = 0;
/// Speaking rates espeak-ng accepts, words per minute.
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = 80..=450;

/// `espeak_EVENT` (speak_lib.h, API revision 12); only `user_data` is read.
#[repr(C)]
struct Event {
    kind: c_int,
    unique_identifier: c_uint,
    text_position: c_int,
    length: c_int,
    audio_position: c_int,
    sample: c_int,
    user_data: *mut c_void,
    id: [u8; 8],
}

type SynthCallback = unsafe extern "C" fn(wav: *mut i16, samples: c_int, events: *mut Event) -> c_int;

#[link(name = "espeak-ng")]
extern "C" {
    fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
    fn espeak_SetSynthCallback(callback: SynthCallback);
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_SetParameter(parameter: c_int, value: c_int, relative: c_int) -> c_int;
    fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: c_uint,
        position_type: c_int,
        end_position: c_uint,
        flags: c_uint,
        unique_identifier: *mut c_uint,
        user_data: *mut c_void,
    ) -> c_int;
}

/// The process-wide synthesizer: its output rate, once initialised.
fn engine() -> Result<&'static Mutex<u32>, TtsError> {
    static ENGINE: OnceLock<Result<Mutex<u32>, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            // SAFETY: called once, before any other espeak function; a null path means the
            // library's own data directory.
            let rate = unsafe { espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, std::ptr::null(), INITIALIZE_DONT_EXIT) };
            if rate <= 0 {
                return Err("espeak-ng could not start: its data files are missing (install the espeak-ng-data package)".into());
            }
            // SAFETY: `on_audio` matches `t_espeak_callback`.
            unsafe { espeak_SetSynthCallback(on_audio) };
            Ok(Mutex::new(rate as u32))
        })
        .as_ref()
        .map_err(|e| TtsError::Engine(e.clone()))
}

/// Where the callback sends the audio of the running `espeak_Synth` call.
type Sink<'a> = &'a mut dyn FnMut(&[f32]) -> bool;

unsafe extern "C" fn on_audio(wav: *mut i16, samples: c_int, events: *mut Event) -> c_int {
    // SAFETY: espeak passes the `user_data` of `espeak_Synth` in every event of the message; it
    // points at a `Sink` living on the stack of `Espeak::synthesize` for the whole call.
    let sink = unsafe { &mut *((*events).user_data as *mut Sink<'_>) };
    if wav.is_null() || samples <= 0 {
        return 0;
    }
    // SAFETY: espeak hands `samples` valid 16-bit samples at `wav`.
    let pcm = unsafe { std::slice::from_raw_parts(wav, samples as usize) };
    let chunk: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    if sink(&chunk) {
        0
    } else {
        1
    }
}

/// An espeak-ng voice: a formant synthesizer, fast and small, robotic but clear.
#[derive(Debug, Clone)]
pub struct Espeak {
    voice: CString,
    rate: u32,
    sample_rate: u32,
}

impl Espeak {
    /// The voice named `voice` (as `espeak-ng --voices` lists them, e.g. `en-us`) at `rate`
    /// words per minute.
    pub fn new(voice: &str, rate: u32) -> Result<Self, TtsError> {
        if !RATE_RANGE.contains(&rate) {
            return Err(TtsError::Setting(format!(
                "a speaking rate of {rate} words per minute is out of range ({}–{})",
                RATE_RANGE.start(),
                RATE_RANGE.end()
            )));
        }
        let name = CString::new(voice).map_err(|_| TtsError::Setting(format!("bad voice name {voice:?}")))?;
        // Selecting the voice checks it exists; like every espeak call, under the engine lock.
        let guard = lock(engine()?);
        let espeak = Self { voice: name, rate, sample_rate: *guard };
        espeak.select(&guard)?;
        drop(guard);
        Ok(espeak)
    }

    /// Makes this voice and rate the engine's current ones; `_engine` proves the caller holds
    /// the engine lock (espeak-ng's state is global and not thread-safe).
    fn select(&self, _engine: &MutexGuard<'_, u32>) -> Result<(), TtsError> {
        // SAFETY: a valid NUL-terminated string; the caller holds the engine lock.
        if unsafe { espeak_SetVoiceByName(self.voice.as_ptr()) } != EE_OK {
            return Err(TtsError::Setting(format!(
                "espeak-ng has no voice named '{}' (`espeak-ng --voices` lists them)",
                self.voice.to_string_lossy()
            )));
        }
        // SAFETY: a plain parameter call under the engine lock.
        if unsafe { espeak_SetParameter(PARAM_RATE, self.rate as c_int, 0) } != EE_OK {
            return Err(TtsError::Engine(format!("espeak-ng refused the rate {}", self.rate)));
        }
        Ok(())
    }
}

impl Synthesizer for Espeak {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn synthesize(&mut self, text: &str, out: &mut dyn FnMut(&[f32]) -> bool) -> Result<(), TtsError> {
        let text = CString::new(text.replace('\0', " ")).expect("NULs replaced");
        let guard = lock(engine()?);
        self.select(&guard)?;
        let mut sink: Sink<'_> = out;
        // SAFETY: the text is NUL-terminated UTF-8; `user_data` points at `sink`, which outlives
        // this synchronous call; the engine lock is held throughout.
        let status = unsafe {
            espeak_Synth(
                text.as_ptr().cast(),
                text.as_bytes().len() + 1,
                0,
                POS_CHARACTER,
                0,
                CHARS_UTF8,
                std::ptr::null_mut(),
                (&mut sink as *mut Sink<'_>).cast(),
            )
        };
        drop(guard);
        if status != EE_OK {
            return Err(TtsError::Engine(format!("espeak-ng failed to synthesize (error {status})")));
        }
        Ok(())
    }
}
