//! `murmur bench`: Murmur's prefill and decode speed beside llama.cpp's, in one run.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::Args;
use murmur_core::compute::{KernelTime, Stats};
use murmur_core::llm::{BackendChoice, Llm, LlmConfig, Sampling};
use murmur_core::models;
use serde_json::{json, Value};

/// The reference measurement script, run with the bench Python.
const LLAMA_CPP_SCRIPT: &str = include_str!("../bench/llama_cpp.py");

#[derive(Args)]
pub struct BenchArgs {
    /// The model: a catalog id or a GGUF file (default: the catalog's default chat model).
    /// With --synthetic, only its head is read.
    #[arg(long, env = "MURMUR_MODEL", value_name = "ID|FILE")]
    model: Option<String>,
    /// Kernels to measure: cpu (at each --threads count) or gpu.
    #[arg(long, value_parser = super::llm::backend_parser(), default_value = BackendChoice::Cpu.name())]
    backend: BackendChoice,
    /// Benchmark a same-shape model with random weights made from the model's head (its
    /// metadata and tensor directory), so the weights themselves need not be at hand.
    #[arg(long)]
    synthetic: bool,
    /// Thread counts to measure (CPU).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    threads: Vec<usize>,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 64)]
    prompt_tokens: u32,
    /// Tokens for the decode measurement.
    #[arg(long, default_value_t = 128)]
    decode_tokens: u32,
    /// Python with llama-cpp-python installed; without it, only Murmur is measured.
    #[arg(long, env = "MURMUR_BENCH_PYTHON")]
    reference_python: Option<String>,
    /// Also time each GPU kernel on its own and print where the device time of a prefill and
    /// of a decoded token goes.
    #[arg(long)]
    profile: bool,
    /// GPU: dispatches recorded before they are submitted without waiting for the rest of the
    /// pass (0: each pass at once).
    #[arg(long, default_value_t = murmur_core::compute::gpu::TURN)]
    turn: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Murmur's best of three runs, and the backend's work per forward pass.
struct Speed {
    prefill: f64,
    decode: f64,
    /// Kernel launches per forward pass.
    dispatches: f64,
    /// Device submissions per forward pass.
    submits: f64,
    /// Per decoded token (a request's time less a prefill's, over the decode steps), in ms:
    /// device time (0 where the device cannot time itself), host time encoding the pass, and
    /// host time waiting for the device.
    device_ms: f64,
    encode_ms: f64,
    wait_ms: f64,
}

/// Device time per kernel (name, dispatches, µs): of a prefill, and of a decoded token.
struct KernelProfile {
    prefill: Vec<(String, f64, f64)>,
    decode: Vec<(String, f64, f64)>,
}

/// Prints where the device time of `what` goes, slowest kernel first.
fn print_kernels(what: &str, rows: &[(String, f64, f64)]) {
    let total: f64 = rows.iter().map(|k| k.2).sum();
    println!("\nkernel | dispatches | µs | share  ({what}; each dispatch timed in its own pass)");
    for (name, d, us) in rows {
        println!("{name} | {d:.1} | {us:.1} | {:.0} %", 100.0 * us / total);
    }
    println!("total | {:.0} | {total:.1} |", rows.iter().map(|k| k.1).sum::<f64>());
}

/// llama.cpp's figures.
struct Reference {
    prefill: f64,
    decode: f64,
}

impl BenchArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut model = self.model.as_deref().map_or_else(models::default_llm_path, models::llm_named);
        if self.synthetic {
            model = models::synthesize(&model)?;
        }
        let threads = match self.backend {
            BackendChoice::Cpu => self.threads.clone(),
            _ => vec![std::thread::available_parallelism().map_or(1, |n| n.get())],
        };
        let mut rows = Vec::new();
        for &t in &threads {
            let (device, ours) = self.murmur(&model, t)?;
            let reference = match (&self.reference_python, self.backend) {
                (Some(py), BackendChoice::Cpu) => Some(self.llama_cpp(py, &model, t)?),
                _ => None,
            };
            rows.push((t, device, ours, reference));
        }
        let ratio = |a: f64, b: Option<f64>| b.map(|b| a / b);
        let profile = if self.profile && self.backend != BackendChoice::Cpu { Some(self.kernel_profile(&model)?) } else { None };
        if self.json {
            let v: Vec<Value> = rows
                .iter()
                .map(|(t, device, o, r)| {
                    json!({
                        "threads": t,
                        "device": device,
                        "murmur": {
                            "prefill_tps": o.prefill,
                            "decode_tps": o.decode,
                            "dispatches_per_token": o.dispatches,
                            "submits_per_token": o.submits,
                            "device_ms_per_token": o.device_ms,
                            "encode_ms_per_token": o.encode_ms,
                            "wait_ms_per_token": o.wait_ms,
                            "wall_ms_per_token": 1e3 / o.decode,
                        },
                        "llama_cpp": r.as_ref().map(|r| json!({"prefill_tps": r.prefill, "decode_tps": r.decode})),
                        "decode_ratio": ratio(o.decode, r.as_ref().map(|r| r.decode)),
                        "prefill_ratio": ratio(o.prefill, r.as_ref().map(|r| r.prefill)),
                    })
                })
                .collect();
            let kernels = |rows: &[(String, f64, f64)]| -> Vec<Value> {
                rows.iter().map(|(name, d, us)| json!({"kernel": name, "dispatches": d, "us": us})).collect()
            };
            let kernels = profile.map(|p| json!({"prefill": kernels(&p.prefill), "decode_per_token": kernels(&p.decode)}));
            println!("{}", serde_json::to_string_pretty(&json!({"runs": v, "kernels": kernels}))?);
            return Ok(());
        }
        println!("model: {}{}", model.display(), if self.synthetic { " (synthetic weights)" } else { "" });
        let (pp, tg) = (self.prompt_tokens, self.decode_tokens);
        println!("device | murmur pp{pp} | llama.cpp pp{pp} | ratio | murmur tg{tg} | llama.cpp tg{tg} | ratio | dispatches/token | submits/token | device ms/token | wall ms/token | encode ms/token | wait ms/token");
        for (_, device, o, r) in rows {
            let fmt = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.1}"));
            let fr = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
            println!(
                "{device} | {:.1} | {} | {} | {:.1} | {} | {} | {:.0} | {:.2} | {} | {:.3} | {:.3} | {:.3}",
                o.prefill,
                fmt(r.as_ref().map(|r| r.prefill)),
                fr(ratio(o.prefill, r.as_ref().map(|r| r.prefill))),
                o.decode,
                fmt(r.as_ref().map(|r| r.decode)),
                fr(ratio(o.decode, r.as_ref().map(|r| r.decode))),
                o.dispatches,
                o.submits,
                if o.device_ms > 0.0 { format!("{:.3}", o.device_ms) } else { "-".into() },
                1e3 / o.decode,
                o.encode_ms,
                o.wait_ms,
            );
        }
        if let Some(p) = profile {
            print_kernels(&format!("a prefill of {pp} tokens"), &p.prefill);
            print_kernels("a decoded token", &p.decode);
        }
        Ok(())
    }

    /// Device time per kernel: of one prefill of `prompt_tokens` (in µs per prompt), and of one
    /// decoded token (a prefill, then `decode_tokens` steps: the difference of the two
    /// profiles over the steps).
    fn kernel_profile(&self, model: &PathBuf) -> anyhow::Result<KernelProfile> {
        let mut config = LlmConfig::new(model);
        config.backend = self.backend;
        config.batch = self.prompt_tokens.max(1);
        config.profile = true;
        let mut llm = Llm::load(config)?;
        let prompt = format!("x{}", " the".repeat(self.prompt_tokens as usize - 1));
        llm.complete(&prompt, &Sampling::greedy(1), |_| true)?;
        let before = llm.profile();
        let sampling = Sampling { ignore_eos: true, ..Sampling::greedy(self.decode_tokens) };
        let (g, _) = llm.complete(&format!("{prompt} the"), &sampling, |_| true)?;
        let steps = g.token_ids.len().max(1) as f64;
        let rows = |now: &[KernelTime], old: &[KernelTime], per: f64| {
            let mut rows: Vec<(String, f64, f64)> = now
                .iter()
                .map(|k| {
                    let old = old.iter().find(|b| b.name == k.name);
                    let (d, ns) = (k.dispatches - old.map_or(0, |o| o.dispatches), k.ns - old.map_or(0, |o| o.ns));
                    (k.name.clone(), d as f64 / per, ns as f64 / 1e3 / per)
                })
                .filter(|r| r.1 > 0.0)
                .collect();
            rows.sort_by(|a, b| b.2.total_cmp(&a.2));
            rows
        };
        Ok(KernelProfile { prefill: rows(&before, &[], 1.0), decode: rows(&llm.profile(), &before, steps) })
    }

    /// Best of three: prefill of `prompt_tokens` (a fresh prompt each time, so no cache reuse),
    /// then `decode_tokens` greedy steps. The prompt is one batch, so every generated token
    /// stands for one forward pass (the prompt's, then one per token but the last).
    fn murmur(&self, model: &PathBuf, threads: usize) -> anyhow::Result<(String, Speed)> {
        let mut config = LlmConfig::new(model);
        config.threads = threads;
        config.backend = self.backend;
        config.batch = self.prompt_tokens.max(1);
        config.gpu_turn = self.turn;
        let mut llm = Llm::load(config)?;
        let mut best =
            Speed { prefill: 0.0, decode: 0.0, dispatches: 0.0, submits: 0.0, device_ms: 0.0, encode_ms: 0.0, wait_ms: 0.0 };
        for round in 0..3 {
            // " the" repeated: one token each; a distinct first word defeats prefix reuse. A
            // prefill alone first, to tell its device time from the decode's.
            let prompt = |tag: &str| format!("{round}{tag}{}", " the".repeat(self.prompt_tokens as usize - 2));
            let at_start = llm.stats();
            llm.complete(&prompt("a"), &Sampling::greedy(1), |_| true)?;
            let before = llm.stats();
            let sampling = Sampling { ignore_eos: true, ..Sampling::greedy(self.decode_tokens) };
            let (g, t) = llm.complete(&prompt("b"), &sampling, |_| true)?;
            let after = llm.stats();
            let forwards = g.token_ids.len().max(1) as f64;
            best.prefill = best.prefill.max(g.prompt_tokens as f64 / t.first_token.as_secs_f64());
            if t.decode_tps > best.decode {
                best.decode = t.decode_tps;
                best.dispatches = (after.dispatches - before.dispatches) as f64 / forwards;
                best.submits = (after.submits - before.submits) as f64 / forwards;
                // Less the prefill's share (the first request was a prefill alone).
                let per_token = |f: fn(&Stats) -> u64| {
                    let ns = (f(&after) - f(&before)).saturating_sub(f(&before) - f(&at_start));
                    ns as f64 / 1e6 / (forwards - 1.0).max(1.0)
                };
                best.device_ms = per_token(|s| s.device_ns);
                best.encode_ms = per_token(|s| s.encode_ns);
                best.wait_ms = per_token(|s| s.wait_ns);
            }
        }
        let device = match self.backend {
            BackendChoice::Cpu => format!("cpu, {threads} threads"),
            _ => llm.device().to_string(),
        };
        Ok((device, best))
    }

    fn llama_cpp(&self, python: &str, model: &PathBuf, threads: usize) -> anyhow::Result<Reference> {
        let out = Command::new(python)
            .args(["-c", LLAMA_CPP_SCRIPT])
            .arg(model)
            .args([threads.to_string(), self.prompt_tokens.to_string(), self.decode_tokens.to_string()])
            .output()
            .with_context(|| format!("running {python} for the llama.cpp reference"))?;
        anyhow::ensure!(out.status.success(), "llama.cpp reference failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).context("reading the llama.cpp reference's output")?;
        Ok(Reference { prefill: v["prefill_tps"].as_f64().unwrap_or(0.0), decode: v["decode_tps"].as_f64().unwrap_or(0.0) })
    }
}
