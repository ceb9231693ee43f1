//! An OpenAI-compatible HTTP server in front of one [`Engine`], so that editors, scripts and
//! chat front ends can use Murmur's model: `GET /v1/models`, `POST /v1/chat/completions`,
//! `POST /v1/completions` (both streaming as server-sent events), `GET /health`.
//!
//! Requests run one at a time in arrival order ([`queue`]); a client that disconnects cancels
//! its generation within a token. The server binds to loopback unless told otherwise, asks for
//! `Authorization: Bearer KEY` when it has a key, and sends CORS headers only for an origin it
//! was given.

mod api;
mod queue;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

pub use api::{ApiError, DEFAULT_MAX_TOKENS};
pub use queue::{Job, Submit};
use queue::{Piece, Prompt, Queue};

use crate::llm::Engine;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (port 0: any free port; see [`Server::addr`]).
    pub addr: SocketAddr,
    /// The model's name in the API (`GET /v1/models`, and what requests must ask for).
    pub model_id: String,
    /// When set, every request must carry `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// The one browser origin allowed to call the server (CORS); none by default.
    pub cors_origin: Option<String>,
}

/// What can stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another server using the port?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The CORS origin is not a valid header value.
    #[error("'{0}' is not a valid browser origin (one such as http://localhost:3000)")]
    Origin(String),
    /// The server's threads could not start.
    #[error("cannot start the server: {0}")]
    Start(std::io::Error),
}

/// A running server; dropping it stops it (a request in progress is cancelled).
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    queue: Queue,
    model_id: String,
    api_key: Option<String>,
}

impl Server {
    /// Binds `config.addr` and serves `engine` from background threads.
    pub fn start(config: ServerConfig, engine: Engine) -> Result<Self, ServerError> {
        Self::serve(config, || Queue::start(engine))
    }

    /// Like [`Server::start`], for an engine that runs elsewhere: each request is handed to
    /// `submit` as a [`Job`] to run there (the app hands them to its assistant, where they take
    /// turns with the user's questions on the one loaded model).
    pub fn start_on(config: ServerConfig, submit: Submit) -> Result<Self, ServerError> {
        Self::serve(config, || Queue::on(submit))
    }

    fn serve(config: ServerConfig, queue: impl FnOnce() -> Queue) -> Result<Self, ServerError> {
        let listener =
            std::net::TcpListener::bind(config.addr).map_err(|source| ServerError::Bind { addr: config.addr, source })?;
        listener.set_nonblocking(true).map_err(ServerError::Start)?;
        let addr = listener.local_addr().map_err(ServerError::Start)?;
        let cors = match &config.cors_origin {
            Some(origin) => Some(HeaderValue::from_str(origin).map_err(|_| ServerError::Origin(origin.clone()))?),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("murmur-http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(ServerError::Start)?;
        let shared = Arc::new(Shared { queue: queue(), model_id: config.model_id, api_key: config.api_key });
        let app = router(shared, cors);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("murmur-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return tracing::error!("the server's socket failed: {e}"),
                    };
                    let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = stopped.await;
                    });
                    if let Err(e) = serve.await {
                        tracing::error!("the server stopped: {e}");
                    }
                });
                // Streams still open are dropped here, which cancels their generations.
                runtime.shutdown_background();
            })
            .map_err(ServerError::Start)?;
        tracing::info!(%addr, "serving the OpenAI API");
        Ok(Self { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server stops (for a process whose only job is to serve).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router(shared: Arc<Shared>, cors: Option<HeaderValue>) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .fallback(|request: Request| async move { ApiError::no_route(request.uri().path()) })
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), authorize))
        .with_state(shared);
    if let Some(origin) = cors {
        let layer = tower_http::cors::CorsLayer::new()
            // A list, not one exact origin: another origin gets no CORS headers at all.
            .allow_origin(tower_http::cors::AllowOrigin::list([origin]))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
        app = app.layer(layer);
    }
    app
}

/// Refuses a request without the right key, when the server has one.
async fn authorize(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if let Some(key) = &shared.api_key {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given.and_then(|v| v.strip_prefix("Bearer ")) != Some(key.as_str()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn model_object(id: &str) -> Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": "murmur" })
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "object": "list", "data": [model_object(&shared.model_id)] }))
}

async fn model(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    match id == shared.model_id {
        true => Ok(Json(model_object(&id))),
        false => Err(ApiError::unknown_model(&id, &shared.model_id)),
    }
}

/// Which endpoint a response is for: they differ only in object names and where the text goes.
#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Completion,
}

impl Kind {
    fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Self::Chat, false) => "chat.completion",
            (Self::Chat, true) => "chat.completion.chunk",
            (Self::Completion, _) => "text_completion",
        }
    }

    /// A choice carrying `text` (`None`: the stream's opening chunk, which names the role).
    fn choice(self, text: Option<&str>, finish: Option<&str>, chunk: bool) -> Value {
        let text_field = match (self, chunk, text) {
            (Self::Chat, false, t) => ("message", json!({ "role": "assistant", "content": t.unwrap_or("") })),
            (Self::Chat, true, None) => ("delta", json!({ "role": "assistant", "content": "" })),
            (Self::Chat, true, Some("")) if finish.is_some() => ("delta", json!({})),
            (Self::Chat, true, Some(t)) => ("delta", json!({ "content": t })),
            (Self::Completion, _, t) => ("text", json!(t.unwrap_or(""))),
        };
        let mut choice = json!({ "index": 0, "finish_reason": finish });
        choice[text_field.0] = text_field.1;
        if matches!(self, Self::Completion) {
            choice["logprobs"] = Value::Null;
        }
        choice
    }
}

/// One response's id, time and model, shared by all of its chunks.
struct Envelope {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
}

impl Envelope {
    fn new(kind: Kind, model: &str) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let prefix = match kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        };
        Self { kind, id: format!("{prefix}-{:x}", now.as_nanos()), created: now.as_secs(), model: model.to_string() }
    }

    fn wrap(&self, chunk: bool, choices: Value, usage: Option<Value>) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": self.kind.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v
    }
}

async fn chat_completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let (messages, request) = api::chat_request(&body)?;
    respond(&shared, Kind::Chat, Prompt::Chat(messages), request).await
}

async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let (prompt, request) = api::completion_request(&body)?;
    respond(&shared, Kind::Completion, Prompt::Complete(prompt), request).await
}

async fn respond(shared: &Shared, kind: Kind, prompt: Prompt, request: api::Request) -> Result<Response, ApiError> {
    if request.model != shared.model_id {
        return Err(ApiError::unknown_model(&request.model, &shared.model_id));
    }
    let envelope = Envelope::new(kind, &shared.model_id);
    let mut pieces = shared.queue.submit(prompt, request.sampling);
    if request.stream {
        return Ok(Sse::new(chunks(envelope, pieces, request.include_usage)).keep_alive(KeepAlive::default()).into_response());
    }
    let mut text = String::new();
    loop {
        match pieces.recv().await {
            Some(Piece::Text(t)) => text.push_str(&t),
            Some(Piece::Done(result)) => {
                let g = result?;
                let choice = kind.choice(Some(&g.text), Some(api::finish_reason(g.stop_reason)), false);
                return Ok(Json(envelope.wrap(false, json!([choice]), Some(api::usage(&g)))).into_response());
            }
            None => return Err(crate::llm::LlmError::Runtime("the model's thread has stopped".into()).into()),
        }
    }
}

/// The server-sent events of a streamed response: an opening chunk, one chunk per piece of
/// text, a closing chunk with the finish reason (and a usage chunk when asked), then `[DONE]`.
/// A failure after the stream has begun is sent as an error event.
fn chunks(
    envelope: Envelope,
    pieces: UnboundedReceiver<Piece>,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    let kind = envelope.kind;
    let data = |v: &Value| Ok(Event::default().data(v.to_string()));
    let opening = match kind {
        Kind::Chat => vec![data(&envelope.wrap(true, json!([kind.choice(None, None, true)]), None))],
        Kind::Completion => Vec::new(),
    };
    let body =
        stream::unfold(pieces, |mut pieces| async move { pieces.recv().await.map(|p| (p, pieces)) }).flat_map(move |piece| {
            let events = match piece {
                Piece::Text(t) => vec![data(&envelope.wrap(true, json!([kind.choice(Some(&t), None, true)]), None))],
                Piece::Done(Ok(g)) => {
                    let finish = kind.choice(Some(""), Some(api::finish_reason(g.stop_reason)), true);
                    let mut events = vec![data(&envelope.wrap(true, json!([finish]), None))];
                    if include_usage {
                        events.push(data(&envelope.wrap(true, json!([]), Some(api::usage(&g)))));
                    }
                    events.push(Ok(Event::default().data("[DONE]")));
                    events
                }
                Piece::Done(Err(e)) => vec![data(&ApiError::from(e).body()), Ok(Event::default().data("[DONE]"))],
            };
            stream::iter(events)
        });
    stream::iter(opening).chain(body)
}
