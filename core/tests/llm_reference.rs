//! The real model in the real guest, against llama.cpp's reference tokens.

mod common;

#[test]
fn tokenizer_gives_llama_cpp_ids() {
    common::check_tokenizer(&mut common::load(), &common::reference());
}

#[test]
fn greedy_tokens_match_llama_cpp_up_to_near_ties() {
    let mut llm = common::load();
    common::check_greedy(&mut llm, &common::reference(), 32, "SmolLM2 Q4_1");
}
