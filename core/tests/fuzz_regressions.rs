//! Inputs the fuzz targets (`fuzz/`) once crashed on, kept in `fuzz/regressions/<target>/` and
//! replayed here through the real entry points: each must get an answer or a clear error.

use std::path::{Path, PathBuf};

use murmur_core::audio::decode_wav;
use murmur_core::llm::{BackendChoice, Llm, LlmConfig, LlmError};
use murmur_core::speech::convert::{to_ggml, Ct2Export};
use murmur_core::speech::ggml::GgmlWhisper;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

#[test]
fn wav_inputs_decode_or_get_a_reason() {
    let cases = inputs("wav");
    assert!(!cases.is_empty(), "the regression inputs are missing");
    for (path, bytes) in cases {
        match decode_wav(bytes.as_slice()) {
            Ok(audio) => assert!(audio.iter().all(|s| s.is_finite()), "{}: non-finite samples", path.display()),
            Err(reason) => assert!(!reason.is_empty(), "{}", path.display()),
        }
    }
}

#[test]
fn whisper_model_inputs_are_refused_with_a_reason() {
    let export = Ct2Export::in_dir(Path::new("regression"));
    let tokenizer = br#"{"model":{"vocab":{"a":0,"b":1,"<|endoftext|>":2}}}"#;
    for (path, bytes) in inputs("whisper_model") {
        let Some((&which, file)) = bytes.split_first() else { continue };
        let reason = match which % 3 {
            0 => GgmlWhisper::parse(file).err().map(|e| e.to_string()),
            1 => to_ggml(&export, file, tokenizer).err().map(|e| e.to_string()),
            _ => to_ggml(&export, &[], file).err().map(|e| e.to_string()),
        };
        assert!(reason.is_some_and(|r| !r.is_empty()), "{}: accepted", path.display());
    }
}

#[test]
fn gguf_inputs_load_in_the_guest_or_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in inputs("gguf") {
        let file = dir.path().join("model.gguf");
        std::fs::write(&file, &bytes).unwrap();
        let mut cfg = LlmConfig::new(&file);
        cfg.backend = BackendChoice::Cpu;
        match Llm::load(cfg) {
            Ok(_) => {}
            // A trap would be the guest's parser panicking: the bug this guards against.
            Err(e @ LlmError::Trap(_)) => panic!("{}: the guest crashed: {e}", path.display()),
            Err(e) => assert!(!e.to_string().is_empty(), "{}", path.display()),
        }
    }
}
