//! The file formats Murmur reads from outside the sandbox, each parser bounds-checked for
//! truncated or hostile input: WAV audio (any rate, depth and channel count, resampled to
//! 16 kHz mono) and the Whisper model containers (the ggml file whisper.cpp loads, and the
//! CTranslate2 export that Murmur converts into it).
//!
//! They live apart from `murmur-core` so that `fuzz/` builds them without wasmtime, wgpu or
//! whisper.cpp.

pub mod resample;
pub mod wav;
pub mod whisper;

/// Sample rate speech recognition works at.
pub const SAMPLE_RATE: u32 = 16_000;
