//! `murmur bench`: Murmur's prefill and decode speed beside llama.cpp's, in one run.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::Args;
use murmur_core::llm::{Llm, LlmConfig, Sampling};
use murmur_core::models;
use serde_json::{json, Value};

/// The reference measurement script, run with the bench Python.
const LLAMA_CPP_SCRIPT: &str = include_str!("../../bench/llama_cpp.py");

#[derive(Args)]
pub struct BenchArgs {
    /// GGUF model file (default: the fetched SmolLM2).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Thread counts to measure.
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
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

struct Speed {
    prefill: f64,
    decode: f64,
}

impl BenchArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let model = self.model.clone().unwrap_or_else(models::default_llm_path);
        let mut rows = Vec::new();
        for &threads in &self.threads {
            let ours = self.murmur(&model, threads)?;
            let reference = match &self.reference_python {
                Some(py) => Some(self.llama_cpp(py, &model, threads)?),
                None => None,
            };
            rows.push((threads, ours, reference));
        }
        let ratio = |a: f64, b: Option<f64>| b.map(|b| a / b);
        if self.json {
            let v: Vec<Value> = rows
                .iter()
                .map(|(t, o, r)| {
                    json!({
                        "threads": t,
                        "murmur": {"prefill_tps": o.prefill, "decode_tps": o.decode},
                        "llama_cpp": r.as_ref().map(|r| json!({"prefill_tps": r.prefill, "decode_tps": r.decode})),
                        "decode_ratio": ratio(o.decode, r.as_ref().map(|r| r.decode)),
                        "prefill_ratio": ratio(o.prefill, r.as_ref().map(|r| r.prefill)),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        println!("model: {}", model.display());
        println!("threads | murmur pp{} | llama.cpp pp{} | ratio | murmur tg{} | llama.cpp tg{} | ratio", self.prompt_tokens, self.prompt_tokens, self.decode_tokens, self.decode_tokens);
        for (t, o, r) in rows {
            let fmt = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.1}"));
            let fr = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
            println!(
                "{t:>7} | {:>10.1} | {:>13} | {:>5} | {:>10.1} | {:>14} | {:>5}",
                o.prefill,
                fmt(r.as_ref().map(|r| r.prefill)),
                fr(ratio(o.prefill, r.as_ref().map(|r| r.prefill))),
                o.decode,
                fmt(r.as_ref().map(|r| r.decode)),
                fr(ratio(o.decode, r.as_ref().map(|r| r.decode))),
            );
        }
        Ok(())
    }

    /// Best of three: prefill of `prompt_tokens` (a fresh prompt each time, so no cache reuse),
    /// then `decode_tokens` greedy steps.
    fn murmur(&self, model: &PathBuf, threads: usize) -> anyhow::Result<Speed> {
        let mut config = LlmConfig::new(model);
        config.threads = threads;
        config.batch = self.prompt_tokens.max(1);
        let mut llm = Llm::load(config)?;
        let mut best = Speed { prefill: 0.0, decode: 0.0 };
        for round in 0..3 {
            // " the" repeated: one token each; a distinct first word defeats prefix reuse.
            let prompt = format!("{round}{}", " the".repeat(self.prompt_tokens as usize - 1));
            let sampling = Sampling { ignore_eos: true, ..Sampling::greedy(self.decode_tokens) };
            let (g, t) = llm.complete(&prompt, &sampling, |_| true)?;
            best.prefill = best.prefill.max(g.prompt_tokens as f64 / t.first_token.as_secs_f64());
            best.decode = best.decode.max(t.decode_tps);
        }
        Ok(best)
    }

    fn llama_cpp(&self, python: &str, model: &PathBuf, threads: usize) -> anyhow::Result<Speed> {
        let out = Command::new(python)
            .args(["-c", LLAMA_CPP_SCRIPT])
            .arg(model)
            .args([threads.to_string(), self.prompt_tokens.to_string(), self.decode_tokens.to_string()])
            .output()
            .with_context(|| format!("running {python} for the llama.cpp reference"))?;
        anyhow::ensure!(out.status.success(), "llama.cpp reference failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).context("reading the llama.cpp reference's output")?;
        Ok(Speed { prefill: v["prefill_tps"].as_f64().unwrap_or(0.0), decode: v["decode_tps"].as_f64().unwrap_or(0.0) })
    }
}
