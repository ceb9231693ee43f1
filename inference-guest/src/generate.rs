//! One loaded model and its session: prompt building, KV-cache reuse, and the generation loop.

use crate::bindings::exports::murmur::llm::llm::{Generation, Message, ModelInfo, Sampling, StopReason};
use crate::bindings::murmur::llm::{compute, output};
use crate::error::{Error, Result};
use crate::gguf::{Gguf, HostModel};
use crate::grammar::{Constraint, Grammars};
use crate::model::{Config, Model};
use crate::sampler::Sampler;
use crate::template::{self, ChatTemplate};
use crate::tokenizer::{Tokenizer, Utf8Stream};

/// Context length used when the caller asks for the model's default.
const DEFAULT_CONTEXT: u32 = 2048;
/// Prompt tokens evaluated per forward pass when the caller does not say.
const DEFAULT_BATCH: u32 = 64;

/// The model, its tokenizer and template, and the tokens its KV cache currently holds.
pub struct Engine {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    model: Model,
    template: ChatTemplate,
    cached: Vec<u32>,
    name: String,
    /// The schema compiler, built on the first constrained request.
    grammars: Option<Grammars>,
}

impl Engine {
    /// Parses the host's model file and binds its weights.
    pub fn load(context: u32, batch: u32) -> Result<Self> {
        let g = Gguf::parse_split(&HostModel, &compute::model_parts())?;
        let cfg = Config::from_gguf(&g)?;
        let tokenizer = Tokenizer::from_gguf(&g)?;
        if tokenizer.vocab_size() != cfg.vocab as usize {
            return Err(Error::Model(format!(
                "the vocabulary has {} tokens but the embedding has {} rows",
                tokenizer.vocab_size(),
                cfg.vocab
            )));
        }
        let source = template::source_for(g.str("tokenizer.chat_template"), &cfg.arch);
        let template = ChatTemplate::new(source, tokenizer.text(tokenizer.bos), tokenizer.text(tokenizer.eos))?;
        let context = match context {
            0 => DEFAULT_CONTEXT.min(cfg.train_context),
            c => c.min(cfg.train_context),
        };
        let batch = if batch == 0 { DEFAULT_BATCH } else { batch }.min(context);
        let model = Model::load(&g, cfg, context, batch)?;
        let name = g.str("general.name").unwrap_or("").to_string();
        Ok(Self { tokenizer, model, template, cached: Vec::new(), name, grammars: None })
    }

    /// What was loaded.
    pub fn info(&self) -> ModelInfo {
        let c = &self.model.cfg;
        ModelInfo {
            architecture: c.arch.clone(),
            name: self.name.clone(),
            context_length: self.model.context,
            layers: c.layers,
            embedding: c.dim,
            heads: c.heads,
            kv_heads: c.kv_heads,
            vocab_size: c.vocab,
        }
    }

    /// Answers the conversation, dropping its oldest turns if it does not fit the context.
    pub fn chat(&mut self, messages: &[Message], p: &Sampling) -> Result<Generation> {
        let reserve = p.max_tokens.clamp(1, self.model.context / 2) as usize;
        let keep_first = usize::from(messages.first().is_some_and(|m| m.role == "system"));
        let mut dropped = 0;
        loop {
            let kept: Vec<Message> = messages[..keep_first].iter().chain(&messages[keep_first + dropped..]).cloned().collect();
            let prompt = self.template.render(&kept)?;
            let tokens = self.tokenizer.encode(&prompt, true)?;
            if tokens.len() + reserve <= self.model.context as usize {
                let mut g = self.generate(&tokens, p)?;
                g.dropped_messages = dropped as u32;
                return Ok(g);
            }
            if keep_first + dropped + 1 >= messages.len() {
                return Err(Error::Context(format!(
                    "the message is too long: {} tokens, and the context holds {} (with {reserve} kept for the reply)",
                    tokens.len(),
                    self.model.context
                )));
            }
            dropped += 1;
        }
    }

    /// Continues raw text.
    pub fn complete(&mut self, prompt: &str, p: &Sampling) -> Result<Generation> {
        let mut tokens = Vec::new();
        if self.tokenizer.add_bos {
            tokens.extend(self.tokenizer.bos);
        }
        tokens.extend(self.tokenizer.encode(prompt, true)?);
        if tokens.is_empty() {
            return Err(Error::Context("the prompt is empty".into()));
        }
        self.generate(&tokens, p)
    }

    /// The constraint a request's JSON schema asks for, compiled before any work is done.
    fn constraint(&mut self, p: &Sampling) -> Result<Option<Constraint>> {
        let Some(schema) = &p.json_schema else { return Ok(None) };
        if self.grammars.is_none() {
            self.grammars = Some(Grammars::new(&self.tokenizer)?);
        }
        self.grammars.as_ref().expect("just built").constrain(schema).map(Some)
    }

    /// Evaluates `prompt` (reusing the cached prefix) and samples until a stop condition.
    fn generate(&mut self, prompt: &[u32], p: &Sampling) -> Result<Generation> {
        let context = self.model.context as usize;
        if prompt.len() >= context {
            return Err(Error::Context(format!("the prompt has {} tokens; the context holds {context}", prompt.len())));
        }
        let mut constraint = self.constraint(p)?;
        let common = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        // At least one token must run to produce fresh logits.
        let reused = common.min(prompt.len() - 1);
        self.cached.truncate(reused);
        // Forget the cache first: if the forward pass fails midway, nothing stale is trusted.
        let mut tokens = std::mem::take(&mut self.cached);
        self.model.forward(&prompt[reused..], reused as u32)?;
        tokens.extend_from_slice(&prompt[reused..]);

        let mut sampler = Sampler::new(p.seed);
        let want = Sampler::wanted(p);
        let mut text = String::new();
        let mut shown = 0;
        let mut utf8 = Utf8Stream::default();
        let mut generated = Vec::new();
        let reason = loop {
            if p.repeat_penalty != 1.0 && p.repeat_last_n > 0 {
                let recent = &tokens[tokens.len().saturating_sub(p.repeat_last_n as usize)..];
                self.model.penalize(recent, p.repeat_penalty)?;
            }
            if let Some(c) = &mut constraint {
                if c.finished() {
                    break StopReason::EndOfGeneration;
                }
                self.model.mask(c.allowed()?.as_slice())?;
            }
            let cands = self.model.candidates(want)?;
            let id = sampler.pick(&cands, p);
            // Under a grammar, end-of-generation is allowed only once the text is complete.
            if self.tokenizer.is_eog(id) && (!p.ignore_eos || constraint.is_some()) {
                break StopReason::EndOfGeneration;
            }
            if let Some(c) = &mut constraint {
                c.accept(id)?;
            }
            generated.push(id);
            utf8.push(self.tokenizer.piece(id), &mut text);
            let (visible, hit) = visible_text(&text, &p.stop);
            if hit {
                text.truncate(visible);
            }
            let piece = &text[shown.min(visible)..visible];
            shown = shown.max(visible);
            if !output::token(id, piece) {
                break StopReason::Cancelled;
            }
            if hit {
                break StopReason::StopString;
            }
            if generated.len() >= p.max_tokens as usize {
                break StopReason::MaxTokens;
            }
            if tokens.len() >= context {
                break StopReason::ContextFull;
            }
            self.model.forward(&[id], tokens.len() as u32)?;
            tokens.push(id);
        };
        self.cached = tokens;
        Ok(Generation {
            text,
            token_ids: generated,
            prompt_tokens: prompt.len() as u32,
            reused_tokens: reused as u32,
            dropped_messages: 0,
            stop_reason: reason,
        })
    }
}

/// How much of `text` may be shown: up to a stop string (`true`: one was found), or else all but
/// a tail that could still become one.
fn visible_text(text: &str, stops: &[String]) -> (usize, bool) {
    if let Some(at) = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min() {
        return (at, true);
    }
    let held =
        stops.iter().flat_map(|s| (1..s.len()).filter(|&k| s.is_char_boundary(k) && text.ends_with(&s[..k]))).max().unwrap_or(0);
    (text.len() - held, false)
}
