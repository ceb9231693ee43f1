//! The OpenAI wire format: requests as clients send them, checked and turned into Murmur's
//! messages and sampling; responses, stream chunks and error objects as clients expect them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::llm::{Generation, LlmError, Message, Sampling, StopReason};

/// Tokens generated when a request does not say (the protocol's "until done" would let one
/// request hold the queue for the whole context).
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// `max_tokens` of a legacy completion that does not say, as the protocol defines it.
const DEFAULT_COMPLETION_TOKENS: u32 = 16;

/// An error as OpenAI's clients parse it: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<String>,
    message: String,
}

impl ApiError {
    /// A malformed or unsupported request (400).
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: None,
            param: param.map(Into::into),
            message: message.into(),
        }
    }

    /// A parameter Murmur does not implement, named (400).
    fn unsupported(param: &str, what: &str) -> Self {
        Self {
            code: Some("unsupported_parameter"),
            ..Self::invalid(format!("'{param}' is not supported by Murmur: {what}"), Some(param))
        }
    }

    /// A model this server does not serve (404).
    pub fn unknown_model(asked: &str, served: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: Some("model".into()),
            message: format!("the model '{asked}' does not exist here; this server serves '{served}' (GET /v1/models)"),
        }
    }

    /// A missing or wrong API key (401).
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            message: "a valid API key is required: send it as 'Authorization: Bearer KEY'".into(),
        }
    }

    /// A path this server does not have (404).
    pub fn no_route(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: Some("unknown_url"),
            ..Self::invalid(format!("there is no {path} here"), None)
        }
    }

    /// The error object, for a stream that fails after it has started.
    pub fn body(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }
}

impl From<LlmError> for ApiError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::TooLong(message) => {
                Self { code: Some("context_length_exceeded"), ..Self::invalid(message, Some("messages")) }
            }
            LlmError::Invalid(message) => Self::invalid(message, Some("response_format")),
            e => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "server_error",
                code: None,
                param: None,
                message: e.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// One or several stop strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A message's content: text, or parts of which only text ones are understood.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The fields both endpoints share.
#[derive(Deserialize)]
struct Common {
    model: String,
    temperature: Option<f32>,
    top_p: Option<f32>,
    /// llama.cpp's extensions, kept by the same names.
    top_k: Option<u32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stop: Option<Stop>,
    seed: Option<u64>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    response_format: Option<Value>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
struct ChatBody {
    messages: Vec<ChatMessage>,
    #[serde(flatten)]
    common: Common,
}

#[derive(Deserialize)]
struct CompletionBody {
    prompt: Value,
    #[serde(flatten)]
    common: Common,
}

/// A checked request, ready for the engine.
pub struct Request {
    /// The model the client named.
    pub model: String,
    /// How to sample.
    pub sampling: Sampling,
    /// Whether to stream chunks.
    pub stream: bool,
    /// Whether the stream ends with a usage chunk.
    pub include_usage: bool,
}

/// A chat completion request: its messages and settings.
pub fn chat_request(body: &[u8]) -> Result<(Vec<Message>, Request), ApiError> {
    let body: ChatBody = parse(body)?;
    if body.messages.is_empty() {
        return Err(ApiError::invalid("'messages' is empty: send at least one message", Some("messages")));
    }
    let messages = body.messages.into_iter().map(message).collect::<Result<_, _>>()?;
    Ok((messages, request(body.common, DEFAULT_MAX_TOKENS)?))
}

/// A legacy completion request: its prompt and settings.
pub fn completion_request(body: &[u8]) -> Result<(String, Request), ApiError> {
    let body: CompletionBody = parse(body)?;
    let prompt = match body.prompt {
        Value::String(s) => s,
        Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_string(),
        _ => return Err(ApiError::invalid("'prompt' must be a string (or a list of one string)", Some("prompt"))),
    };
    Ok((prompt, request(body.common, DEFAULT_COMPLETION_TOKENS)?))
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON for this endpoint: {e}"), None))
}

fn message(m: ChatMessage) -> Result<Message, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        other => {
            return Err(ApiError::unsupported("messages", &format!("messages of role '{other}' (tools are not implemented)")))
        }
    };
    let content = match m.content {
        None => String::new(),
        Some(Content::Text(t)) => t,
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::unsupported(
                            "messages",
                            &format!("content parts of type '{}'; send text", kind.unwrap_or("?")),
                        ))
                    }
                }
            }
            text
        }
    };
    Ok(Message { role: role.into(), content })
}

/// A parameter Murmur refuses: its name, which values mean "the default" (accepted), and why.
type Unsupported = (&'static str, fn(&Value) -> bool, &'static str);

/// Parameters that change what a client gets back and that Murmur does not implement: refused by
/// name, rather than silently ignored, whenever they ask for something other than the default.
fn refuse_unsupported(rest: &Map<String, Value>) -> Result<(), ApiError> {
    let asks = |key: &str, default_like: fn(&Value) -> bool| rest.get(key).is_some_and(|v| !v.is_null() && !default_like(v));
    let checks: [Unsupported; 11] = [
        ("n", |v| v.as_u64() == Some(1), "one choice per request"),
        ("best_of", |v| v.as_u64() == Some(1), "one choice per request"),
        ("tools", |v| v.as_array().is_some_and(Vec::is_empty), "tool calls are not implemented"),
        ("tool_choice", |v| v.as_str() == Some("none"), "tool calls are not implemented"),
        ("functions", |v| v.as_array().is_some_and(Vec::is_empty), "function calls are not implemented"),
        ("function_call", |v| v.as_str() == Some("none"), "function calls are not implemented"),
        ("logprobs", |v| v.as_bool() == Some(false), "log-probabilities are not returned"),
        ("top_logprobs", |v| v.as_u64() == Some(0), "log-probabilities are not returned"),
        ("logit_bias", |v| v.as_object().is_some_and(Map::is_empty), "logit biases are not implemented"),
        ("echo", |v| v.as_bool() == Some(false), "the prompt is not echoed"),
        ("suffix", |v| v.as_str() == Some(""), "insertion is not implemented"),
    ];
    for (key, default_like, why) in checks {
        if asks(key, default_like) {
            return Err(ApiError::unsupported(key, why));
        }
    }
    for key in ["frequency_penalty", "presence_penalty"] {
        if rest.get(key).and_then(Value::as_f64).is_some_and(|p| p != 0.0) {
            return Err(ApiError::unsupported(key, "use 'repeat_penalty' (llama.cpp's repetition penalty) instead"));
        }
    }
    Ok(())
}

fn request(c: Common, default_max_tokens: u32) -> Result<Request, ApiError> {
    refuse_unsupported(&c.rest)?;
    let defaults = Sampling::default();
    let temperature = c.temperature.unwrap_or(defaults.temperature);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(format!("'temperature' must be between 0 and 2, not {temperature}"), Some("temperature")));
    }
    let top_p = c.top_p.unwrap_or(defaults.top_p);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(format!("'top_p' must be in (0, 1], not {top_p}"), Some("top_p")));
    }
    let max_tokens = c.max_completion_tokens.or(c.max_tokens).unwrap_or(default_max_tokens);
    if max_tokens == 0 {
        return Err(ApiError::invalid("'max_tokens' must be at least 1", Some("max_tokens")));
    }
    let stop = match c.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) if v.len() <= 4 => v,
        Some(Stop::Many(_)) => return Err(ApiError::invalid("'stop' takes at most 4 strings", Some("stop"))),
    };
    let json_schema = match c.response_format {
        None => None,
        Some(format) => response_format(&format)?,
    };
    let sampling = Sampling {
        temperature,
        top_p,
        top_k: c.top_k.unwrap_or(defaults.top_k),
        min_p: c.min_p.unwrap_or(defaults.min_p),
        repeat_penalty: c.repeat_penalty.unwrap_or(defaults.repeat_penalty),
        seed: c.seed.unwrap_or(defaults.seed),
        max_tokens,
        stop,
        json_schema,
        ..defaults
    };
    let include_usage = c.stream_options.is_some_and(|o| o.include_usage);
    Ok(Request { model: c.model, sampling, stream: c.stream, include_usage })
}

/// The JSON schema a `response_format` constrains the reply to (`json_object`: any object), or
/// `None` for plain text.
fn response_format(format: &Value) -> Result<Option<String>, ApiError> {
    let param = Some("response_format");
    match format["type"].as_str() {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(r#"{"type":"object"}"#.into())),
        Some("json_schema") => match format["json_schema"].get("schema") {
            Some(schema @ (Value::Object(_) | Value::Bool(true))) => Ok(Some(schema.to_string())),
            _ => Err(ApiError::invalid("'response_format.json_schema.schema' must be a JSON schema object", param)),
        },
        other => Err(ApiError::invalid(
            format!("'response_format.type' must be text, json_object or json_schema, not {}", other.unwrap_or("missing")),
            param,
        )),
    }
}

/// The protocol's name for why generation ended.
pub fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens | StopReason::ContextFull => "length",
        StopReason::EndOfGeneration | StopReason::StopString | StopReason::Cancelled => "stop",
    }
}

/// Token counts of a generation; `cached_tokens` are the prompt tokens whose KV cache an
/// earlier request of the same conversation left behind.
pub fn usage(g: &Generation) -> Value {
    let completion = g.token_ids.len() as u32;
    json!({
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": g.prompt_tokens + completion,
        "prompt_tokens_details": { "cached_tokens": g.reused_tokens },
    })
}
