//! Session behaviour of the sandboxed LLM: cache reuse, seeds, cancellation, traps, limits.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use murmur_core::llm::{Llm, LlmConfig, LlmError, Message, Sampling, StopReason};

/// A token sink that runs `action` when the `at`-th token arrives, and never asks to stop.
fn at_token(at: usize, action: impl Fn() + Send + 'static) -> impl FnMut(&str) -> bool + Send + 'static {
    let mut n = 0;
    move |_| {
        n += 1;
        if n == at {
            action();
        }
        true
    }
}

fn msg(role: &str, content: &str) -> Message {
    Message { role: role.into(), content: content.into() }
}

#[test]
fn second_turn_reuses_the_first_turns_cache() {
    let mut llm = common::load();
    let mut conv = vec![msg("system", "You are a helpful assistant."), msg("user", "Name a fruit.")];
    let (first, _) = llm.chat(&conv, &Sampling::greedy(16), |_| true).unwrap();
    assert_eq!(first.reused_tokens, 0);
    conv.push(msg("assistant", &first.text));
    conv.push(msg("user", "Name another one."));
    let (second, _) = llm.chat(&conv, &Sampling::greedy(16), |_| true).unwrap();
    assert!(
        second.reused_tokens >= first.prompt_tokens,
        "turn two re-ran its history: reused {} of {} tokens, turn one's prompt was {}",
        second.reused_tokens,
        second.prompt_tokens,
        first.prompt_tokens
    );
    assert!(!second.text.trim().is_empty());
}

#[test]
fn same_seed_same_text() {
    let mut llm = common::load();
    let conv = [msg("user", "Write a short poem about the sea.")];
    let sample = |llm: &mut Llm, seed| {
        let s = Sampling { temperature: 1.0, seed, max_tokens: 24, ..Sampling::default() };
        llm.chat(&conv, &s, |_| true).unwrap().0.text
    };
    let a = sample(&mut llm, 42);
    let b = sample(&mut llm, 42);
    assert_eq!(a, b);
    let others: Vec<String> = (1..4).map(|s| sample(&mut llm, s)).collect();
    assert!(others.iter().any(|o| *o != a), "different seeds all gave {a:?}");
}

#[test]
fn cancel_stops_within_one_token() {
    let mut llm = common::load();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let s = Sampling { ignore_eos: true, ..Sampling::greedy(64) };
    let (g, _) = llm
        .complete("Once upon a time", &s, move |_| counter.fetch_add(1, Ordering::SeqCst) + 1 < 3)
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::Cancelled);
    assert_eq!(g.token_ids.len(), 3);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[test]
fn canceller_from_another_handle_stops_generation() {
    let mut llm = common::load();
    let canceller = llm.canceller();
    let s = Sampling { ignore_eos: true, ..Sampling::greedy(200) };
    let (g, _) = llm.complete("Count: one, two, three,", &s, at_token(5, move || canceller.cancel())).unwrap();
    assert_eq!(g.stop_reason, StopReason::Cancelled);
    assert_eq!(g.token_ids.len(), 5);
}

#[test]
fn an_interrupted_guest_traps_and_the_next_request_works() {
    let mut llm = common::load();
    let canceller = llm.canceller();
    let s = Sampling { ignore_eos: true, ..Sampling::greedy(500) };
    let err = llm.complete("The history of Rome", &s, at_token(2, move || canceller.interrupt())).unwrap_err();
    assert!(matches!(err, LlmError::Trap(_)), "{err}");
    let (g, _) = llm.complete("The capital of France is", &Sampling::greedy(1), |_| true).unwrap();
    assert_eq!(g.token_ids, vec![7042], "a fresh instance answers ' Paris'");
}

#[test]
fn a_guest_over_its_memory_cap_fails_cleanly_and_the_host_keeps_serving() {
    let mut config = LlmConfig::new(common::model_path());
    config.guest_memory = 8 << 20;
    let err = Llm::load(config).err().expect("8 MiB is too little for the tokenizer");
    assert!(matches!(err, LlmError::Trap(_)), "{err}");
    assert!(err.to_string().contains("memory"), "{err}");
    let mut llm = common::load();
    assert_eq!(llm.tokenize("Hello", false).unwrap(), vec![19556]);
}

#[test]
fn host_tensor_cap_is_enforced() {
    let mut config = LlmConfig::new(common::model_path());
    config.host_memory = 4 << 20;
    let err = Llm::load(config).err().expect("4 MiB cannot hold the KV cache");
    assert!(err.to_string().contains("out of memory"), "{err}");
}

#[test]
fn a_long_conversation_drops_its_oldest_turns() {
    let mut config = LlmConfig::new(common::model_path());
    config.context = 256;
    let mut llm = Llm::load(config).unwrap();
    let mut conv = vec![msg("system", "You are terse.")];
    for i in 0..12 {
        conv.push(msg("user", &format!("Question {i}: please describe the colour of the sky in detail.")));
        conv.push(msg("assistant", "It is blue, pale near the horizon and deeper overhead on clear days."));
    }
    conv.push(msg("user", "What colour is grass?"));
    let (g, _) = llm.chat(&conv, &Sampling::greedy(16), |_| true).unwrap();
    assert!(g.dropped_messages > 0, "nothing was dropped");
    assert!(g.prompt_tokens as usize + 16 <= 256);
}

#[test]
fn broken_model_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(common::model_path()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = Llm::load(LlmConfig::new(&truncated)).err().expect("a truncated file is rejected");
    assert!(err.to_string().contains("truncated"), "{err}");

    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, b"hello, this is not a model").unwrap();
    let err = Llm::load(LlmConfig::new(&not_gguf)).err().expect("a text file is rejected");
    assert!(err.to_string().contains("not a GGUF file"), "{err}");

    let err = Llm::load(LlmConfig::new(dir.path().join("absent.gguf"))).err().expect("missing");
    assert!(err.to_string().contains("absent.gguf"), "{err}");
}
