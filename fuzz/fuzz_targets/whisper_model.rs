//! The Whisper model readers we own: the ggml checker run before whisper.cpp sees a file, and
//! the CTranslate2 → ggml converter (its `model.bin` reader and its `tokenizer.json` reader).
//! The first byte picks the input; the rest is the file.
#![no_main]
murmur_fuzz::capped_allocator!();

use std::path::Path;

use murmur_formats::whisper::convert::{to_ggml, Ct2Export};
use murmur_formats::whisper::ggml::GgmlWhisper;

/// A valid `tokenizer.json` with a two-token vocabulary, for inputs that fuzz `model.bin`.
const TOKENIZER: &[u8] = br#"{"model":{"vocab":{"a":0,"b":1,"<|endoftext|>":2}}}"#;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, file)) = data.split_first() else { return };
    let export = Ct2Export::in_dir(Path::new("fuzz"));
    match which % 3 {
        0 => drop(GgmlWhisper::parse(file)),
        1 => drop(to_ggml(&export, file, TOKENIZER)),
        _ => drop(to_ggml(&export, &[], file)),
    }
});
