//! Shared test helpers: the real default model and the reference data beside the checkout.

#![allow(dead_code)]

use std::path::PathBuf;

use std::sync::{Mutex, MutexGuard, OnceLock};

use murmur_core::llm::{Llm, LlmConfig};
use murmur_core::models;
use murmur_core::speech::{SpeechConfig, Transcriber};

/// `../shared` beside the checkout (or `$MURMUR_SHARED`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("MURMUR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// llama.cpp's reference outputs on the default model.
pub fn reference() -> serde_json::Value {
    let path = shared_dir().join("reference/llm.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("llm.json parses")
}

/// The fetched default model (`./dev test` fetches it first).
pub fn model_path() -> PathBuf {
    let p = murmur_core::models::default_llm_path();
    assert!(p.exists(), "{} is missing: run `murmur models fetch`", p.display());
    p
}

/// The default model in a fresh sandboxed session.
pub fn load() -> Llm {
    Llm::load(LlmConfig::new(model_path())).expect("the default model loads")
}

/// A JSON array of integers as `u32`s.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// Lower-case words without punctuation, small numbers as digits (as Whisper's own English
/// normaliser writes them).
pub fn words(text: &str) -> Vec<String> {
    const NUMBERS: [&str; 13] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(|w| NUMBERS.iter().position(|n| *n == w).map_or_else(|| w.to_string(), |i| i.to_string()))
        .collect()
}

/// Word edit distance between a reference and a hypothesis.
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

/// The default model, converted (by setup) and loaded once for all tests here.
pub fn transcriber() -> MutexGuard<'static, Transcriber> {
    static T: OnceLock<Mutex<Transcriber>> = OnceLock::new();
    T.get_or_init(|| {
        let path = models::default_speech_path();
        assert!(path.exists(), "{} is missing: run `murmur models convert`", path.display());
        Mutex::new(Transcriber::load(&path, SpeechConfig::default()).expect("the converted model loads"))
    })
    .lock()
    .unwrap_or_else(|p| p.into_inner())
}

/// Word errors and reference words over `sentences`, each turned into 16 kHz audio by `speak`
/// and transcribed by the default speech model.
pub fn word_error_rate(sentences: &[&str], mut speak: impl FnMut(usize, &str) -> Vec<f32>) -> (usize, usize) {
    let (mut wrong, mut total) = (0, 0);
    for (i, s) in sentences.iter().enumerate() {
        let audio = speak(i, s);
        let text = transcriber().transcribe(&audio).unwrap_or_else(|e| panic!("{s:?}: {e}")).text;
        let (w, n) = word_errors(s, &text);
        eprintln!("{s:?} → {text:?}: {w}/{n}");
        wrong += w;
        total += n;
    }
    (wrong, total)
}
