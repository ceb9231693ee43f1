//! Speech to text: Whisper through whisper-rs (whisper.cpp), loaded once and kept warm, plus
//! the converter that turns the default CTranslate2 export into the ggml file it loads.

mod transcriber;

pub use murmur_formats::whisper::{convert, ct2, ggml, mel};
pub use transcriber::{SpeechConfig, SpeechError, SpeechTimings, Transcriber, Transcript, DEFAULT_BEAM, DEFAULT_LANGUAGE};
