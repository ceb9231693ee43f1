//! The models users download, in the real guest on the CPU backend, against llama.cpp's own
//! answers (made by the test setup with `tests/reference/llama_reference.py`): the catalog's Qwen2.5
//! files (K-quants, qwen2) and llama.cpp's quantised variants of the default model, one per
//! weight type.

mod common;

use murmur_core::assistant::DEFAULT_SYSTEM;
use murmur_core::llm::{Llm, LlmConfig, Message, Sampling};

fn load(path: std::path::PathBuf) -> Llm {
    Llm::load(LlmConfig::new(path.clone())).unwrap_or_else(|e| panic!("{} loads: {e}", path.display()))
}

/// Each real model: its qwen2 tokenizer on mixed text, 16 greedy tokens of three prompts, and
/// the reference question answered.
#[test]
fn qwen2_5_models_match_llama_cpp_and_answer() {
    for (id, file) in [
        ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m"),
        ("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m"),
    ] {
        let mut llm = load(common::catalog_model(id));
        let reference = common::reference_for(file);
        common::check_tokenizer(&mut llm, &reference);
        common::check_greedy(&mut llm, &reference, 16, id);
        let question = [
            Message { role: "system".into(), content: DEFAULT_SYSTEM.into() },
            Message { role: "user".into(), content: "What is the capital of France?".into() },
        ];
        let (g, _) = llm.chat(&question, &Sampling::greedy(24), |_| true).expect("answers");
        assert!(g.text.contains("Paris"), "{id} answered {:?}", g.text);
    }
}

/// The default model requantised by llama.cpp to each weight type: 32 greedy tokens of three
/// prompts. SmolLM2's width (576) is not a multiple of 256, so llama.cpp keeps most tensors of
/// a K-quant variant in Q5_0/Q8_0 and the rest in the K type.
#[test]
fn quantised_variants_of_the_default_match_llama_cpp() {
    let dir = murmur_core::paths::cache_dir().join("variants");
    for ty in ["Q4_0", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"] {
        let stem = format!("SmolLM2-135M-Instruct.{ty}");
        let path = dir.join(format!("{stem}.gguf"));
        assert!(path.exists(), "{} is missing (made by `./dev test`'s setup)", path.display());
        let mut llm = load(path);
        common::check_greedy(&mut llm, &common::reference_for(&stem), 32, &stem);
    }
}
