//! `murmur ask`, `murmur complete`, `murmur tokenize`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::Args;
use murmur_core::assistant::DEFAULT_SYSTEM;
use murmur_core::llm::{
    BackendChoice, Engine, EngineConfig, Generation, Llm, LlmConfig, Message, RemoteConfig, Sampling, Timings,
};
use murmur_core::models::{self, Manifest};
use serde_json::json;

/// Options shared by every command that loads the model.
#[derive(Args)]
pub struct ModelArgs {
    /// The chat model: a catalog id (`murmur models list`) or a GGUF file (default: the
    /// catalog's default chat model).
    #[arg(long, env = "MURMUR_MODEL", value_name = "ID|FILE")]
    model: Option<String>,
    /// Which kernels run the model: auto (a hardware GPU when there is one, else the CPU), cpu
    /// or gpu.
    #[arg(long, value_parser = backend_parser(), default_value = BackendChoice::Auto.name())]
    backend: BackendChoice,
    /// Kernel threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Parses `--backend`, offering the core's names for the choices.
pub fn backend_parser() -> impl TypedValueParser<Value = BackendChoice> {
    clap::builder::PossibleValuesParser::new(BackendChoice::ALL.map(BackendChoice::name))
        .map(|name| name.parse::<BackendChoice>().expect("a name the core offered"))
}

impl ModelArgs {
    /// The model configuration these options describe.
    pub fn config(&self) -> LlmConfig {
        let mut config = LlmConfig::new(self.model.as_deref().map_or_else(models::default_llm_path, models::llm_named));
        config.backend = self.backend;
        if let Some(t) = self.threads {
            config.threads = t;
        }
        config
    }

    fn load(&self) -> anyhow::Result<Llm> {
        Ok(Llm::load(self.config())?)
    }

    /// The model's name in the OpenAI API: its catalog id, or the file's name without `.gguf`.
    pub fn id(&self) -> String {
        match &self.model {
            None => Manifest::builtin().default_llm().id.clone(),
            Some(name) if Manifest::builtin().get(name).is_some() => name.clone(),
            Some(path) => Path::new(path).file_stem().map_or_else(|| path.clone(), |s| s.to_string_lossy().into_owned()),
        }
    }
}

/// Options that send the chat to an OpenAI-compatible server instead of the local model.
#[derive(Args)]
pub struct RemoteArgs {
    /// An OpenAI-compatible server to answer instead of the local model (vLLM, llama.cpp's
    /// server, Ollama, another `murmur serve`), e.g. http://gpu-box:8000/v1.
    #[arg(long, env = "MURMUR_LLM_URL", value_name = "URL")]
    llm_url: Option<String>,
    /// The model to ask the server for (default: the first one it lists).
    #[arg(long, env = "MURMUR_LLM_MODEL", value_name = "NAME", requires = "llm_url")]
    llm_model: Option<String>,
    /// The server's API key, sent as a bearer token.
    #[arg(long, env = "MURMUR_LLM_API_KEY", value_name = "KEY", requires = "llm_url", hide_env_values = true)]
    llm_api_key: Option<String>,
}

impl RemoteArgs {
    /// The remote engine these options name, if any.
    pub fn config(&self) -> Option<RemoteConfig> {
        let url = self.llm_url.clone()?;
        Some(RemoteConfig { url, model: self.llm_model.clone(), api_key: self.llm_api_key.clone() })
    }

    /// The remote engine, or else the local model.
    pub fn engine(&self, local: &ModelArgs) -> EngineConfig {
        self.config().map_or_else(|| EngineConfig::Local(local.config()), EngineConfig::Remote)
    }
}

#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Sampling temperature (0: greedy). Low by default: small models wander when hot.
    #[arg(long, default_value_t = Sampling::default().temperature)]
    temp: f32,
    /// Keep the k most likely tokens (0: off).
    #[arg(long, default_value_t = Sampling::default().top_k)]
    top_k: u32,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = Sampling::default().top_p)]
    top_p: f32,
    /// Minimum probability relative to the best token.
    #[arg(long, default_value_t = Sampling::default().min_p)]
    min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long, default_value_t = Sampling::default().repeat_penalty)]
    repeat_penalty: f32,
    /// Random seed (same seed, same answer).
    #[arg(long, default_value_t = Sampling::default().seed)]
    seed: u64,
    /// Most tokens to generate.
    #[arg(long, default_value_t = Sampling::default().max_tokens)]
    max_tokens: u32,
    /// The system prompt.
    #[arg(long, default_value = DEFAULT_SYSTEM)]
    system: String,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Answer with JSON that validates against the JSON schema in this file (`{}`: any JSON).
    #[arg(long, value_name = "FILE")]
    json_schema: Option<PathBuf>,
    /// The question.
    question: String,
}

impl AskArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let json_schema = match &self.json_schema {
            Some(path) => {
                Some(std::fs::read_to_string(path).with_context(|| format!("cannot read the JSON schema {}", path.display()))?)
            }
            None => None,
        };
        let mut engine = Engine::start(self.remote.engine(&self.model))?;
        let sampling = Sampling {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            max_tokens: self.max_tokens,
            json_schema,
            ..Sampling::default()
        };
        let messages =
            [Message { role: "system".into(), content: self.system }, Message { role: "user".into(), content: self.question }];
        let (g, t) = engine.chat(&messages, &sampling, stream_to_stdout(self.json))?;
        finish(&mut engine, &g, &t, self.json, false)
    }
}

#[derive(Args)]
pub struct CompleteArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Most tokens to generate.
    #[arg(long, default_value_t = Sampling::default().max_tokens)]
    max_tokens: u32,
    /// Keep going past end-of-generation tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object (with the generated token ids) instead of streaming text.
    #[arg(long)]
    json: bool,
    /// The raw prompt.
    prompt: String,
}

impl CompleteArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut engine = Engine::start(self.remote.engine(&self.model))?;
        let sampling = Sampling { ignore_eos: self.ignore_eos, ..Sampling::greedy(self.max_tokens) };
        let (g, t) = engine.complete(&self.prompt, &sampling, stream_to_stdout(self.json))?;
        finish(&mut engine, &g, &t, self.json, true)
    }
}

#[derive(Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text.
    text: String,
}

impl TokenizeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let ids = self.model.load()?.tokenize(&self.text, true)?;
        println!("{}", serde_json::to_string(&ids)?);
        Ok(())
    }
}

fn stream_to_stdout(quiet: bool) -> impl FnMut(&str) -> bool + Send + 'static {
    move |text| {
        if !quiet {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        true
    }
}

fn finish(engine: &mut Engine, g: &Generation, t: &Timings, json: bool, with_ids: bool) -> anyhow::Result<()> {
    for note in engine.take_notices() {
        eprintln!("{note}");
    }
    if !json {
        println!();
        return Ok(());
    }
    let mut v = json!({
        "answer": g.text,
        "prompt_tokens": g.prompt_tokens,
        "generated_tokens": g.token_ids.len(),
        "reused_tokens": g.reused_tokens,
        "stop_reason": g.stop_reason.name(),
        "time_to_first_token_ms": t.first_token.as_secs_f64() * 1e3,
        "decode_tokens_per_s": t.decode_tps,
        "backend": engine.backend_name(),
    });
    if with_ids {
        v["token_ids"] = json!(g.token_ids);
    }
    println!("{v}");
    Ok(())
}
