//! Murmur's engine: everything that works without a window.
//!
//! - [`llm`]: the sandboxed LLM (Wasmtime host for the `inference-guest` component).
//! - [`compute`]: the kernel backends the guest's math runs on (native CPU; WGSL on the GPU via wgpu).
//! - [`models`]: the default-model manifest, fetching and verification.
//! - [`audio`]: WAV files, microphone capture and resampling.
//! - [`speech`]: speech to text (Whisper) and the model converter.
//! - [`tts`]: text to speech (espeak-ng) and the sentence splitter for streamed replies.
//! - [`history`]: chat history in SQLite.
//! - [`assistant`]: the state machine that runs a voice turn end to end.
//! - [`server`]: the OpenAI-compatible HTTP server (`murmur serve`).

pub mod assistant;
pub mod audio;
pub mod compute;
pub mod history;
pub mod llm;
pub mod models;
pub mod paths;
pub mod server;
pub mod speech;
pub mod sync;
pub mod tts;
