//! espeak-ng through its C library (`libespeak-ng`, bound by `espeakng-sys`): speech in
//! synchronous retrieval mode, the IPA phonemes that Piper voices are fed, and the voice list.
//!
//! The library keeps one global synthesizer per process and is not thread-safe, so every
//! [`Espeak`] shares it behind one lock; each call sets its own voice and rate first. Audio comes
//! back through a callback in chunks of about 50 ms, which are handed on as they are made.

use std::ffi::{c_int, c_void, CStr, CString};
use std::sync::{Mutex, MutexGuard, OnceLock};

use espeakng_sys as ffi;

use super::{check_rate, Synthesizer, TtsError};
use crate::sync::lock;

/// Callback buffer length in milliseconds.
const BUFFER_MS: c_int = 50;
/// Speaking rates espeak-ng accepts, words per minute.
pub(super) const ESPEAK_RATES: std::ops::RangeInclusive<u32> = ffi::espeakRATE_MINIMUM..=ffi::espeakRATE_MAXIMUM;

/// The process-wide synthesizer: its output rate, once initialised.
fn engine() -> Result<&'static Mutex<u32>, TtsError> {
    static ENGINE: OnceLock<Result<Mutex<u32>, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            // SAFETY: called once, before any other espeak function; a null path means the
            // library's own data directory.
            let rate = unsafe {
                ffi::espeak_Initialize(
                    ffi::espeak_AUDIO_OUTPUT_AUDIO_OUTPUT_SYNCHRONOUS,
                    BUFFER_MS,
                    std::ptr::null(),
                    ffi::espeakINITIALIZE_DONT_EXIT as c_int,
                )
            };
            if rate <= 0 {
                return Err("espeak-ng could not start: its data files are missing (install the espeak-ng-data package)".into());
            }
            // SAFETY: `on_audio` matches `t_espeak_callback`.
            unsafe { ffi::espeak_SetSynthCallback(Some(on_audio)) };
            Ok(Mutex::new(rate as u32))
        })
        .as_ref()
        .map_err(|e| TtsError::Engine(e.clone()))
}

/// Where the callback sends the audio of the running `espeak_Synth` call.
type Sink<'a> = &'a mut dyn FnMut(&[f32]) -> bool;

unsafe extern "C" fn on_audio(wav: *mut i16, samples: c_int, events: *mut ffi::espeak_EVENT) -> c_int {
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
        check_rate(rate)?;
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
        set_voice(&self.voice, _engine)?;
        // SAFETY: a plain parameter call under the engine lock.
        if unsafe { ffi::espeak_SetParameter(ffi::espeak_PARAMETER_espeakRATE, self.rate as c_int, 0) } != ffi::espeak_ERROR_EE_OK
        {
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
            ffi::espeak_Synth(
                text.as_ptr().cast(),
                text.as_bytes().len() + 1,
                0,
                ffi::espeak_POSITION_TYPE_POS_CHARACTER,
                0,
                ffi::espeakCHARS_UTF8,
                std::ptr::null_mut(),
                (&mut sink as *mut Sink<'_>).cast(),
            )
        };
        drop(guard);
        if status != ffi::espeak_ERROR_EE_OK {
            return Err(TtsError::Engine(format!("espeak-ng failed to synthesize (error {status})")));
        }
        Ok(())
    }
}

/// Makes `voice` the engine's current voice; `_engine` proves the caller holds the engine lock.
fn set_voice(voice: &CStr, _engine: &MutexGuard<'_, u32>) -> Result<(), TtsError> {
    // SAFETY: a valid NUL-terminated string; the caller holds the engine lock.
    if unsafe { ffi::espeak_SetVoiceByName(voice.as_ptr()) } != ffi::espeak_ERROR_EE_OK {
        return Err(TtsError::Setting(format!("espeak-ng has no voice named '{}'", voice.to_string_lossy())));
    }
    Ok(())
}

/// The IPA phonemes espeak-ng's `voice` gives each of `texts` (espeak-ng's own clauses of one
/// joined by spaces): what Piper voices are trained on. One lock and one voice change for all.
pub(super) fn phonemes(voice: &CStr, texts: &[&str]) -> Result<Vec<String>, TtsError> {
    let guard = lock(engine()?);
    set_voice(voice, &guard)?;
    Ok(texts.iter().map(|text| text_phonemes(text, &guard)).collect())
}

/// The phonemes of one text; `_engine` proves the caller holds the engine lock.
fn text_phonemes(text: &str, _engine: &MutexGuard<'_, u32>) -> String {
    let text = CString::new(text.replace('\0', " ")).expect("NULs replaced");
    let mut next: *const c_void = text.as_ptr().cast();
    let mut all = String::new();
    while !next.is_null() {
        // SAFETY: `next` points into `text` (NUL-terminated UTF-8), which outlives the loop;
        // espeak-ng advances it past the clause it read, or nulls it at the end. The engine lock
        // is held throughout.
        let clause =
            unsafe { ffi::espeak_TextToPhonemes(&mut next, ffi::espeakCHARS_UTF8 as c_int, ffi::espeakPHONEMES_IPA as c_int) };
        if clause.is_null() {
            break;
        }
        // SAFETY: espeak-ng returns a NUL-terminated string it owns until the next call.
        let clause = unsafe { CStr::from_ptr(clause) }.to_string_lossy();
        let clause = clause.trim();
        if !clause.is_empty() {
            if !all.is_empty() {
                all.push(' ');
            }
            all.push_str(clause);
        }
    }
    all
}

/// The names of espeak-ng's voices (`en-us`, `fr-fr`, …), each the language it speaks first.
pub fn espeak_voices() -> Result<Vec<String>, TtsError> {
    let guard = lock(engine()?);
    // SAFETY: a null spec lists every voice; the array, ended by a null entry, and the voices it
    // points at are espeak-ng's and valid until the next call, made under the same lock.
    let mut names = Vec::new();
    unsafe {
        let mut voice = ffi::espeak_ListVoices(std::ptr::null_mut());
        while !voice.is_null() && !(*voice).is_null() {
            // `languages` is a list of (priority byte, NUL-terminated name), ended by a 0 byte.
            let languages = (**voice).languages;
            if !languages.is_null() && *languages != 0 {
                names.push(CStr::from_ptr(languages.add(1)).to_string_lossy().into_owned());
            }
            voice = voice.add(1);
        }
    }
    drop(guard);
    names.sort();
    names.dedup();
    Ok(names)
}
