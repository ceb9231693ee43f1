//! Where replies come from: the local model in its sandbox, or a remote OpenAI-compatible
//! server. The assistant and `murmur serve` drive either through this one type.

use super::remote::{RemoteConfig, RemoteLlm};
use super::{Generation, Llm, LlmConfig, LlmError, Message, Sampling, Timings};

/// Which engine to start.
#[derive(Debug, Clone)]
pub enum EngineConfig {
    /// The local model in the sandboxed guest.
    Local(LlmConfig),
    /// An OpenAI-compatible server.
    Remote(RemoteConfig),
}

/// A started engine.
pub enum Engine {
    /// The local model.
    Local(Box<Llm>),
    /// A remote server.
    Remote(RemoteLlm),
}

impl Engine {
    /// Loads the local model, or readies the client of a remote one (contacted on first use).
    pub fn start(config: EngineConfig) -> Result<Self, LlmError> {
        Ok(match config {
            EngineConfig::Local(c) => Self::Local(Box::new(Llm::load(c)?)),
            EngineConfig::Remote(c) => Self::Remote(RemoteLlm::new(c)),
        })
    }

    /// What runs the model: `"cpu"` or `"gpu"` (local), or `"remote"`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Local(llm) => llm.backend_name(),
            Self::Remote(_) => "remote",
        }
    }

    /// Where the model runs, in words: the local device, or the server's address.
    pub fn device(&self) -> String {
        match self {
            Self::Local(llm) => llm.device().to_string(),
            Self::Remote(r) => format!("{} at {}", r.model().unwrap_or("the model"), r.url()),
        }
    }

    /// Answers a conversation, streaming each piece of text to `on_text` (return false to stop).
    pub fn chat(
        &mut self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: impl FnMut(&str) -> bool + Send + 'static,
    ) -> Result<(Generation, Timings), LlmError> {
        match self {
            Self::Local(llm) => llm.chat(messages, sampling, on_text),
            Self::Remote(r) => r.chat(messages, sampling, on_text),
        }
    }

    /// Evaluates `messages` into the local model's cache and discards the one token sampled,
    /// so that a later prompt that starts with them reuses the work. A remote engine is left
    /// alone: for it, this would be a real request.
    pub fn prime(&mut self, messages: &[Message]) -> Result<(), LlmError> {
        match self {
            Self::Local(llm) => llm.chat(messages, &Sampling::greedy(1), |_| false).map(drop),
            Self::Remote(_) => Ok(()),
        }
    }

    /// Continues a raw prompt (no chat template).
    pub fn complete(
        &mut self,
        prompt: &str,
        sampling: &Sampling,
        on_text: impl FnMut(&str) -> bool + Send + 'static,
    ) -> Result<(Generation, Timings), LlmError> {
        match self {
            Self::Local(llm) => llm.complete(prompt, sampling, on_text),
            Self::Remote(r) => r.complete(prompt, sampling, on_text),
        }
    }

    /// Things the user should know that did not stop a request, each returned once.
    pub fn take_notices(&mut self) -> Vec<String> {
        match self {
            Self::Local(llm) => llm.take_notices(),
            Self::Remote(_) => Vec::new(),
        }
    }
}
