//! A remote engine: any OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, another
//! `murmur serve`) answering in place of the local guest.
//!
//! The reply streams over server-sent events on the caller's thread, so the assistant's token,
//! sentence and barge-in handling is the same as for the local model: returning false from the
//! text callback drops the connection, which is how these servers learn to stop generating.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Generation, LlmError, Message, Sampling, StopReason, Timings};

/// Where a remote engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The server's base URL, e.g. `http://gpu-box:8000/v1` (a URL without a path gets `/v1`).
    pub url: String,
    /// The model to ask for; `None`: the first one the server lists.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
}

/// A client of one OpenAI-compatible server.
pub struct RemoteLlm {
    agent: ureq::Agent,
    base: String,
    config: RemoteConfig,
    model: Option<String>,
}

/// What a request streams to: the caller's callback, and what has arrived so far.
struct Stream<'a> {
    on_text: &'a mut dyn FnMut(&str) -> bool,
    text: String,
    pieces: u32,
    first: Option<Instant>,
    last: Option<Instant>,
    finish: Option<StopReason>,
    prompt_tokens: u32,
}

impl RemoteLlm {
    /// A client for `config`. Nothing is contacted yet: a server that is down gives its error on
    /// the first request, and the next request tries again.
    pub fn new(config: RemoteConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            // A long prompt on a busy server can take a while before its first byte.
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .build()
            .into();
        let trimmed = config.url.trim_end_matches('/');
        let has_path = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest).contains('/');
        let base = if has_path { trimmed.to_string() } else { format!("{trimmed}/v1") };
        Self { agent, base, model: config.model.clone(), config }
    }

    /// The server's base URL, as requests use it.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The model asked for, once known (given, or found on the first request).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Answers a conversation, streaming each piece of text to `on_text` (return false to stop:
    /// the connection is closed and the server stops generating).
    pub fn chat(
        &mut self,
        messages: &[Message],
        sampling: &Sampling,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<(Generation, Timings), LlmError> {
        let messages: Vec<Value> = messages.iter().map(|m| json!({ "role": m.role, "content": m.content })).collect();
        let body = self.body(sampling, ("messages", Value::Array(messages)))?;
        self.stream("chat/completions", &body, &mut on_text, |choice| choice["delta"]["content"].as_str())
    }

    /// Continues a raw prompt through the server's `completions` endpoint.
    pub fn complete(
        &mut self,
        prompt: &str,
        sampling: &Sampling,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<(Generation, Timings), LlmError> {
        let body = self.body(sampling, ("prompt", Value::String(prompt.into())))?;
        self.stream("completions", &body, &mut on_text, |choice| choice["text"].as_str())
    }

    /// The request body: the model, the input and the sampling settings the protocol has.
    fn body(&mut self, sampling: &Sampling, (key, input): (&str, Value)) -> Result<Value, LlmError> {
        let mut body = json!({
            "model": self.resolve_model()?,
            key: input,
            "stream": true,
            "stream_options": { "include_usage": true },
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": sampling.seed,
        });
        if !sampling.stop.is_empty() {
            body["stop"] = json!(sampling.stop);
        }
        Ok(body)
    }

    /// The model to ask for: the configured one, else the first the server lists (asked once).
    pub fn resolve_model(&mut self) -> Result<String, LlmError> {
        if let Some(m) = &self.model {
            return Ok(m.clone());
        }
        let mut response = self.send(self.authorized(self.agent.get(format!("{}/models", self.base))).call())?;
        let list: Value =
            response.body_mut().read_json().map_err(|e| self.failed(&format!("its model list is not JSON: {e}")))?;
        let id = list["data"][0]["id"].as_str().ok_or_else(|| self.failed("it lists no models; pass --llm-model NAME"))?;
        tracing::info!(url = %self.base, model = id, "remote engine model");
        self.model = Some(id.to_string());
        Ok(id.to_string())
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.config.api_key {
            Some(key) => request.header("Authorization", format!("Bearer {key}")),
            None => request,
        }
    }

    /// Turns a transport failure or an error status into words the user can act on.
    fn send(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, LlmError> {
        let mut response = result.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.body_mut().read_to_string().unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().or(v["error"].as_str()).map(str::to_string))
            .unwrap_or(body);
        let hint = match status.as_u16() {
            401 | 403 => "; check the API key (--llm-api-key, or Settings)",
            404 => "; check the URL and the model name",
            _ => "",
        };
        Err(self.failed(&format!("it answered {status}: {}{hint}", detail.trim())))
    }

    /// Streams one request's server-sent events into `on_text`.
    fn stream(
        &mut self,
        endpoint: &str,
        body: &Value,
        on_text: &mut dyn FnMut(&str) -> bool,
        piece: fn(&Value) -> Option<&str>,
    ) -> Result<(Generation, Timings), LlmError> {
        let start = Instant::now();
        let request = self.authorized(self.agent.post(format!("{}/{endpoint}", self.base)));
        let response = self.send(request.send_json(body))?;
        let mut s = Stream { on_text, text: String::new(), pieces: 0, first: None, last: None, finish: None, prompt_tokens: 0 };
        let reader = BufReader::new(response.into_body().into_reader());
        let mut done = false;
        for line in reader.lines() {
            let line = line.map_err(|e| self.failed(&format!("the reply broke off: {e}")))?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
            if data == "[DONE]" {
                done = true;
                break;
            }
            let event: Value = serde_json::from_str(data)
                .map_err(|e| self.failed(&format!("it sent an event that is not JSON ({e}): {data}")))?;
            if let Some(error) = event.get("error") {
                let message = error["message"].as_str().map_or_else(|| error.to_string(), str::to_string);
                return Err(self.failed(&format!("it failed mid-reply: {message}")));
            }
            if let Some(prompt) = event["usage"]["prompt_tokens"].as_u64() {
                s.prompt_tokens = prompt as u32;
            }
            let Some(choice) = event["choices"].get(0) else { continue };
            if let Some(text) = piece(choice).filter(|t| !t.is_empty()) {
                if !s.push(text) {
                    // Dropping the reader closes the connection: the server stops generating.
                    s.finish = Some(StopReason::Cancelled);
                    break;
                }
            }
            match choice["finish_reason"].as_str() {
                Some("length") => s.finish = Some(StopReason::MaxTokens),
                Some(_) => s.finish = Some(StopReason::EndOfGeneration),
                None => {}
            }
        }
        let stop = match (s.finish, done) {
            (Some(reason), _) => reason,
            (None, true) => StopReason::EndOfGeneration,
            (None, false) => return Err(self.failed("stopped answering before the reply was finished")),
        };
        Ok(s.finish(start, stop))
    }

    fn unreachable(&self, e: &ureq::Error) -> LlmError {
        LlmError::Remote(format!(
            "cannot reach the model server at {}: {e}. Check that it is running and the address is right, or switch back to the local model",
            self.base
        ))
    }

    fn failed(&self, why: &str) -> LlmError {
        LlmError::Remote(format!("the model server at {} {why}", self.base))
    }
}

impl Stream<'_> {
    /// Forwards a piece of text; false when the caller wants no more.
    fn push(&mut self, text: &str) -> bool {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.pieces += 1;
        self.text.push_str(text);
        (self.on_text)(text)
    }

    fn finish(self, start: Instant, stop: StopReason) -> (Generation, Timings) {
        let total = start.elapsed();
        let decode_tps = match (self.first, self.last) {
            (Some(f), Some(l)) if self.pieces > 1 && l > f => f64::from(self.pieces - 1) / (l - f).as_secs_f64(),
            _ => 0.0,
        };
        let generation = Generation {
            text: self.text,
            // The protocol streams text, not token ids.
            token_ids: Vec::new(),
            prompt_tokens: self.prompt_tokens,
            reused_tokens: 0,
            dropped_messages: 0,
            stop_reason: stop,
        };
        (generation, Timings { first_token: self.first.map_or(total, |f| f - start), total, decode_tps })
    }
}
