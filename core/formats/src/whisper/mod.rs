//! The Whisper model containers: the ggml file whisper.cpp loads (checked before it sees one)
//! and the CTranslate2 export converted into it.

mod bytes;
pub mod convert;
pub mod ct2;
pub mod ggml;
pub mod mel;

