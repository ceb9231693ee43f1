//! Shared test helpers: the real models (SmolLM2, the model most tests run because it is the
//! quickest, and the rest of the catalog) and the reference data beside the checkout.

#![allow(dead_code)]

pub mod probe;

use std::path::PathBuf;
use std::sync::Arc;

use std::sync::{Mutex, MutexGuard, OnceLock};

use murmur_core::llm::{Llm, LlmConfig, Sampling};
use murmur_core::models;
use murmur_core::speech::{SpeechConfig, Transcriber};

/// `../shared` beside the checkout (or `$MURMUR_SHARED`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("MURMUR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// llama.cpp's reference outputs on SmolLM2 (`../shared/reference/llm.json`).
pub fn reference() -> serde_json::Value {
    let path = shared_dir().join("reference/llm.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("llm.json parses")
}

/// llama.cpp's answers on `model` (a file stem), made by the test setup
/// (`tests/reference/llama_reference.py`, run by `./dev test`).
pub fn reference_for(model: &str) -> serde_json::Value {
    let path = murmur_core::paths::cache_dir().join("references").join(format!("{model}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (made by `./dev test`'s setup)", path.display()));
    serde_json::from_str(&text).expect("the reference parses")
}

/// A catalog model's installed file (`./dev test` fetches the whole catalog).
pub fn catalog_model(id: &str) -> PathBuf {
    let manifest = models::Manifest::builtin();
    let p = models::llm_path(manifest.get(id).unwrap_or_else(|| panic!("{id} is in the catalog")));
    assert!(p.exists(), "{} is missing: run `murmur models fetch {id}`", p.display());
    p
}

/// A synthetic model of `family` (`llama3`, `qwen3`, `gemma3`: random weights, made by the test
/// setup) as `ty`: its F16 source, or one of llama.cpp's quantised variants of it.
pub fn synthetic(family: &str, ty: &str) -> (PathBuf, String) {
    let stem = format!("{family}-synthetic.{ty}");
    let dir = murmur_core::paths::cache_dir().join(if ty == "F16" { "synthetic" } else { "variants" });
    let path = dir.join(format!("{stem}.gguf"));
    assert!(path.exists(), "{} is missing (made by `./dev test`'s setup)", path.display());
    (path, stem)
}

/// The synthetic Llama 3 split into three files (made by the test setup): the first file and
/// its reference's stem.
pub fn split_llama3() -> (PathBuf, String) {
    let stem = "llama3-synthetic.F16-split-00001-of-00003".to_string();
    let path = murmur_core::paths::cache_dir().join("split").join(format!("{stem}.gguf"));
    assert!(path.exists(), "{} is missing (made by `./dev test`'s setup)", path.display());
    (path, stem)
}

/// Checks that `llm` tokenizes `reference`'s texts to llama.cpp's ids.
pub fn check_tokenizer(llm: &mut Llm, reference: &serde_json::Value) {
    for case in reference["tokenization"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let got = llm.tokenize(text, true).expect("tokenizes");
        assert_eq!(got, ids(&case["token_ids"]), "tokenizing {:?} ({})", text, case["name"]);
    }
}

/// Checks that `llm`'s greedy continuations of `reference`'s prompts (at most `steps` tokens)
/// equal llama.cpp's, or first differ at a near-tie: Murmur's token is one of llama.cpp's
/// candidates within 0.5 of its best (its runner-up, or a third of a three-way tie). Returns
/// how many prompts diverged that way.
pub fn check_greedy(llm: &mut Llm, reference: &serde_json::Value, steps: usize, model: &str) -> usize {
    check_greedy_with(llm, reference, steps, model, |_, _| {})
}

/// [`check_greedy`], calling `after(case, agreed)` after each prompt with the number of steps
/// that chose llama.cpp's token.
pub fn check_greedy_with(
    llm: &mut Llm,
    reference: &serde_json::Value,
    steps: usize,
    model: &str,
    mut after: impl FnMut(&serde_json::Value, usize),
) -> usize {
    let cases = reference["greedy"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let mut near_ties = 0;
    for case in cases {
        let name = format!("{model} {}", case["name"].as_str().expect("name"));
        let prompt = case["prompt"].as_str().expect("prompt");
        let mut want = ids(&case["greedy_ids"]);
        want.truncate(steps);
        // llama.cpp's prompt starts with the BOS token where the model adds one (gemma3);
        // Murmur adds it when it runs the prompt, not when it tokenizes text.
        let (got, prompt_ids) = (llm.tokenize(prompt, true).expect("tokenizes"), ids(&case["prompt_ids"]));
        let text_ids = if prompt_ids.len() == got.len() + 1 { &prompt_ids[1..] } else { &prompt_ids[..] };
        assert_eq!(got, text_ids, "{name}: prompt ids");
        let sampling = Sampling { ignore_eos: true, ..Sampling::greedy(want.len() as u32) };
        let (g, _) = llm.complete(prompt, &sampling, |_| true).expect("generates");
        assert_eq!(g.token_ids.len(), want.len(), "{name}: generated count");
        if let Some(at) = g.token_ids.iter().zip(&want).position(|(a, b)| a != b) {
            let top: Vec<(u32, f64)> = case["top5_logits_per_step"][at]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c[0].as_u64().unwrap() as u32, c[1].as_f64().unwrap()))
                .collect();
            let best = top[0].1;
            let tied = top.iter().find(|&&(id, logit)| id == g.token_ids[at] && best - logit <= 0.5);
            assert!(
                tied.is_some(),
                "{name}: step {at} chose {} where llama.cpp chose {} (llama.cpp's best five {top:?})",
                g.token_ids[at],
                want[at]
            );
            eprintln!("{name}: diverges at step {at}, a near-tie ({best:.3} vs {:.3})", tied.unwrap().1);
            near_ties += 1;
            after(case, at);
        } else {
            eprintln!("{name}: all {} tokens equal llama.cpp's", want.len());
            after(case, want.len());
        }
    }
    near_ties
}

/// [`check_greedy`] on `path` run by the CPU backend, and along each prompt's path while it is
/// llama.cpp's, each of llama.cpp's five best logits that Murmur also ranks among its five best
/// within `rel` of llama.cpp's (relative to the larger of its magnitude and 1). Returns the
/// largest relative difference seen.
pub fn check_greedy_and_logits(path: PathBuf, reference: &serde_json::Value, steps: usize, model: &str, rel: f64) -> f64 {
    let seen: probe::Seen = Arc::default();
    let mut llm = Llm::load_on(LlmConfig::new(path.clone()), |w| {
        Box::new(probe::Probe::new(murmur_core::compute::CpuBackend::new(Arc::clone(w), 2), &seen))
    })
    .unwrap_or_else(|e| panic!("{} loads: {e}", path.display()));
    let mut worst = 0f64;
    check_greedy_with(&mut llm, reference, steps, model, |case, agreed| {
        let ours = std::mem::take(&mut *seen.lock().unwrap());
        for (step, theirs) in case["top5_logits_per_step"].as_array().unwrap().iter().take(agreed).enumerate() {
            for c in theirs.as_array().unwrap() {
                let (id, want) = (c[0].as_u64().unwrap() as u32, c[1].as_f64().unwrap());
                let Some(&(_, got)) = ours[step].iter().find(|&&(i, _)| i == id) else { continue };
                let diff = (got as f64 - want).abs() / want.abs().max(1.0);
                worst = worst.max(diff);
                assert!(diff <= rel, "{model} {}: step {step}, token {id}: logit {got} against llama.cpp's {want}", case["name"]);
            }
        }
    });
    eprintln!("{model}: logits within {worst:.2e} of llama.cpp's");
    worst
}

/// The id of SmolLM2, the catalog's quickest model, that most tests run.
pub const SMOLLM2: &str = "smollm2-135m";

/// SmolLM2, fetched (`./dev test` fetches the whole catalog first).
pub fn model_path() -> PathBuf {
    catalog_model(SMOLLM2)
}

/// SmolLM2 in a fresh sandboxed session.
pub fn load() -> Llm {
    Llm::load(LlmConfig::new(model_path())).expect("SmolLM2 loads")
}

/// A JSON array of integers as `u32`s.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// Lower-case words without punctuation, small numbers as digits (as Whisper's own English
/// normaliser writes them).
pub fn words(text: &str) -> Vec<String> {
    const NUMBERS: [&str; 13] =
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
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
