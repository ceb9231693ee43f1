//! Speech to text: Whisper through whisper-rs (whisper.cpp), loaded once and kept warm, plus
//! the converter that turns the default CTranslate2 export into the ggml file it loads.

mod bytes;
pub mod convert;
pub mod ct2;
pub mod ggml;
pub mod mel;
mod transcriber;

pub use transcriber::{SpeechConfig, DEFAULT_BEAM, SpeechError, SpeechTimings, Transcriber, Transcript};
