//! Shared test helpers: the real default model and the reference data beside the checkout.

#![allow(dead_code)]

use std::path::PathBuf;

use murmur_core::llm::{Llm, LlmConfig};

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
