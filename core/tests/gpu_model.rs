//! The whole model on the GPU backend (lavapipe in CI): forced decoding against the CPU
//! backend's greedy sequence, a device lost mid-reply, and which backend `auto` picks.

mod common;

use std::sync::{Arc, Mutex};

use common::probe::{Probe, Seen};
use murmur_core::compute::gpu::device::{find_adapter, AdapterPolicy};
use murmur_core::compute::gpu::GpuOptions;
use murmur_core::compute::{CpuBackend, CpuWeights, GpuBackend};
use murmur_core::llm::{BackendChoice, Llm, LlmConfig, Sampling};

fn gpu(weights: &Arc<CpuWeights>) -> GpuBackend {
    GpuBackend::new(Arc::clone(weights.model()), GpuOptions::new(AdapterPolicy::Any))
        .expect("a GPU adapter (lavapipe: apt install mesa-vulkan-drivers)")
}

fn config(backend: BackendChoice) -> LlmConfig {
    config_for(common::model_path(), backend)
}

fn config_for(model: std::path::PathBuf, backend: BackendChoice) -> LlmConfig {
    let mut c = LlmConfig::new(model);
    c.backend = backend;
    c.context = 256;
    c
}

/// For each reference prompt: the CPU backend's greedy sequence is fed to the GPU backend one
/// position at a time (the prompt plus the first i generated tokens), and the GPU's top token
/// must be the CPU's wherever the CPU's top two logits are more than 0.5 apart.
#[test]
fn forced_decoding_agrees_with_the_cpu() {
    forced_decoding(common::model_path(), &common::reference());
}

/// The same on llama.cpp's Q4_K_M variant of SmolLM2: Q4_K, Q5_0, Q6_K and Q8_0
/// weights through the GPU's repacked layouts.
#[test]
fn forced_decoding_agrees_with_the_cpu_on_a_k_quant_variant() {
    let stem = "SmolLM2-135M-Instruct.Q4_K_M";
    let path = murmur_core::paths::cache_dir().join("variants").join(format!("{stem}.gguf"));
    forced_decoding(path, &common::reference_for(stem));
}

/// Llama 3's rotation (divided by `rope_freqs`, so not fused into the mat-mul) and K-quants in
/// 256-wide tensors: the synthetic Llama 3's Q4_K_M variant on the GPU continues the reference
/// prompts as llama.cpp does (equal, or first apart at a near-tie).
#[test]
fn a_synthetic_llama3_k_quant_variant_matches_llama_cpp_on_the_gpu() {
    let (path, stem) = common::synthetic("llama3", "Q4_K_M");
    let mut llm = Llm::load_on(config_for(path, BackendChoice::Gpu), |m| Box::new(gpu(m))).unwrap();
    assert_eq!(llm.backend_name(), "gpu");
    common::check_greedy(&mut llm, &common::reference_for(&stem), 16, &stem);
}

/// Gemma 3 on the GPU (its per-head norms, GELU, post-norms and sliding windows through the
/// WGSL kernels) starts the reference prompts' continuations as llama.cpp does. Four tokens: its
/// 262,144-row output head makes each token slow on lavapipe, and the synthetic Gemma 3 below
/// runs 32.
#[test]
fn gemma3_matches_llama_cpp_on_the_gpu() {
    let path = common::catalog_model("gemma3-270m");
    let mut llm = Llm::load_on(config_for(path, BackendChoice::Gpu), |m| Box::new(gpu(m))).unwrap();
    assert_eq!(llm.backend_name(), "gpu");
    common::check_greedy(&mut llm, &common::reference_for("gemma-3-270m-q4_k_m"), 4, "gemma3-270m");
}

/// The synthetic Qwen3, Phi-3 and Gemma 3 (per-head norms of heads wider than the width over
/// the heads, fused tensors, Gemma 3's sliding windows), and the synthetic Llama 3 split into
/// three files, on the GPU continue the reference prompts as llama.cpp does for 16 tokens (the
/// CPU runs 32; Gemma 3's window of 5 slides from the sixth position on).
#[test]
fn synthetic_families_and_a_split_model_match_llama_cpp_on_the_gpu() {
    let models = ["qwen3", "phi3", "gemma3"].map(|family| common::synthetic(family, "F16"));
    for (path, stem) in models.into_iter().chain([common::split_llama3()]) {
        let mut llm = Llm::load_on(config_for(path, BackendChoice::Gpu), |m| Box::new(gpu(m))).unwrap();
        common::check_greedy(&mut llm, &common::reference_for(&stem), 16, &stem);
    }
}

fn forced_decoding(model: std::path::PathBuf, reference: &serde_json::Value) {
    const STEPS: usize = 20;
    let cpu_seen: Seen = Arc::default();
    let gpu_seen: Seen = Arc::default();
    let mut cpu = Llm::load_on(config_for(model.clone(), BackendChoice::Cpu), |m| {
        Box::new(Probe::new(CpuBackend::new(Arc::clone(m), 2), &cpu_seen))
    })
    .unwrap();
    let mut gpu = Llm::load_on(config_for(model, BackendChoice::Gpu), |m| Box::new(Probe::new(gpu(m), &gpu_seen))).unwrap();
    assert_eq!(gpu.backend_name(), "gpu");
    let (mut checked, mut ties, mut skipped) = (0, 0, 0);
    for case in reference["greedy"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = common::ids(&case["prompt_ids"]);
        cpu_seen.lock().unwrap().clear();
        let pieces: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&pieces);
        let sampling = Sampling { ignore_eos: true, ..Sampling::greedy(STEPS as u32) };
        let (g, _) = cpu
            .complete(prompt, &sampling, move |text| {
                sink.lock().unwrap().push(text.to_string());
                true
            })
            .unwrap();
        let cpu_steps = cpu_seen.lock().unwrap().clone();
        let pieces = pieces.lock().unwrap().clone();
        for i in 0..STEPS {
            let cpu_best = &cpu_steps[i];
            assert_eq!(cpu_best[0].0, g.token_ids[i], "the CPU's greedy token is its top-1");
            let context = format!("{prompt}{}", pieces[..i].concat());
            let expected: Vec<u32> = prompt_ids.iter().chain(&g.token_ids[..i]).copied().collect();
            if gpu.tokenize(&context, true).unwrap() != expected {
                skipped += 1; // this text tokenizes differently from the generated ids
                continue;
            }
            gpu_seen.lock().unwrap().clear();
            gpu.complete(&context, &Sampling::greedy(1), |_| true).unwrap();
            let gpu_top = gpu_seen.lock().unwrap()[0][0].0;
            if cpu_best[0].1 - cpu_best[1].1 < 0.5 {
                ties += 1;
                continue;
            }
            let name = &case["name"];
            assert_eq!(gpu_top, cpu_best[0].0, "{name}: position {i} after {context:?}: CPU's top two {:?}", &cpu_best[..2]);
            checked += 1;
        }
    }
    eprintln!("{checked} positions agree, {ties} near-ties, {skipped} not re-tokenizable");
    assert!(checked >= 30, "too few positions checked (of {}): {checked}", 3 * STEPS);
}

/// The GPU is destroyed (as a driver reset would) before the fourth token: the reply goes on
/// from there on the CPU, is whole, and the user is told; later requests stay on the CPU.
#[test]
fn a_lost_gpu_hands_the_reply_to_the_cpu() {
    let prompt = "The capital of France is";
    let sampling = Sampling { ignore_eos: true, ..Sampling::greedy(12) };
    let mut cpu = Llm::load(config(BackendChoice::Cpu)).unwrap();
    let (expected, _) = cpu.complete(prompt, &sampling, |_| true).unwrap();

    let seen: Seen = Arc::default();
    let mut gpu = Llm::load_on(config(BackendChoice::Gpu), |m| {
        let mut probe = Probe::new(gpu(m), &seen);
        probe.before_top_k = Box::new(|g: &mut GpuBackend, call| {
            if call == 4 {
                g.lose_device();
            }
        });
        Box::new(probe)
    })
    .unwrap();
    let streamed: Arc<Mutex<String>> = Arc::default();
    let sink = Arc::clone(&streamed);
    let (g, _) = gpu
        .complete(prompt, &sampling, move |t| {
            sink.lock().unwrap().push_str(t);
            true
        })
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3, "three tokens came from the GPU");
    assert_eq!(g.token_ids.len(), 12, "the reply is whole: {g:?}");
    assert_eq!(*streamed.lock().unwrap(), g.text, "what was streamed is the reply");
    // The first three tokens agree on both backends for this prompt (no near-ties), so the
    // CPU's continuation is the CPU's own greedy reply.
    assert_eq!(g.text, expected.text);
    let notes = gpu.take_notices();
    assert!(notes.len() == 1 && notes[0].contains("GPU") && notes[0].contains("CPU"), "{notes:?}");
    assert_eq!(gpu.backend_name(), "cpu");
    let (again, _) = gpu.complete(prompt, &sampling, |_| true).unwrap();
    assert_eq!(again.text, expected.text);
    assert!(gpu.take_notices().is_empty(), "the user is told once");
}

/// `auto` takes a hardware GPU when there is one and the CPU otherwise: a software adapter
/// such as lavapipe (all that CI has) is never chosen, while `gpu` takes it.
#[test]
fn auto_never_picks_a_software_adapter() {
    let hardware = find_adapter(AdapterPolicy::Hardware).is_some();
    let any = find_adapter(AdapterPolicy::Any).expect("some adapter (lavapipe in CI)");
    let auto = Llm::load(config(BackendChoice::Auto)).unwrap();
    assert_eq!(auto.backend_name(), if hardware { "gpu" } else { "cpu" }, "auto on {:?}", any.get_info());
    let forced = Llm::load(config(BackendChoice::Gpu)).unwrap();
    assert_eq!(forced.backend_name(), "gpu");
    assert!(forced.device().contains(&any.get_info().name), "{}", forced.device());
}

/// A JSON schema constrains the reply on both backends through the host's mask: SmolLM2, which
/// left to itself rarely writes valid JSON, writes an object with the required fields and the
/// enum's value, and both backends write the same one (greedy, masked on the device on the GPU).
#[test]
fn a_json_schema_constrains_the_reply_on_both_backends() {
    let schema = r#"{"type":"object","properties":{"city":{"type":"string","maxLength":20},"sunny":{"type":"boolean"},
        "mood":{"enum":["happy","sad"]}},"required":["city","sunny","mood"],"additionalProperties":false}"#;
    let sampling = Sampling { json_schema: Some(schema.into()), ..Sampling::greedy(80) };
    let messages = [murmur_core::llm::Message { role: "user".into(), content: "Describe the weather in Paris as JSON.".into() }];
    let reply = |backend| {
        let mut llm = Llm::load(config(backend)).unwrap();
        let (g, _) = llm.chat(&messages, &sampling, |_| true).unwrap();
        g.text
    };
    let (cpu, gpu) = (reply(BackendChoice::Cpu), reply(BackendChoice::Gpu));
    for text in [&cpu, &gpu] {
        let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(v["city"].is_string() && v["sunny"].is_boolean(), "{v}");
        assert!(["happy", "sad"].contains(&v["mood"].as_str().unwrap()), "{v}");
        assert_eq!(v.as_object().unwrap().len(), 3, "no other properties: {v}");
    }
    assert_eq!(cpu, gpu, "the same masked greedy reply on both backends");
}
