//! Where requests wait: one at a time, in the order they arrived, on the engine's thread — the
//! server's own ([`Queue::start`]), or the assistant's brain ([`Queue::on`]), where they take
//! turns with the user's questions.
//!
//! Each request streams its text through its own channel. A client that goes away drops the
//! receiving end: the next token finds it closed and generation stops, and a request whose client
//! left while it waited is skipped.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::llm::{Engine, Generation, LlmError, Message, Sampling};

/// What to generate from.
pub(super) enum Prompt {
    /// A conversation, through the chat template.
    Chat(Vec<Message>),
    /// Raw text.
    Complete(String),
}

/// What a request streams back.
pub(super) enum Piece {
    /// More of the reply.
    Text(String),
    /// The end: the whole generation, or why it failed.
    Done(Result<Generation, LlmError>),
}

/// One request for the engine, and where its reply goes (boxed: it travels through channels).
pub struct Job(Box<Request>);

struct Request {
    prompt: Prompt,
    sampling: Sampling,
    out: UnboundedSender<Piece>,
}

impl Job {
    /// Generates the reply on `engine`, streaming it to the client (skipped if the client has
    /// already gone).
    pub fn run(self, engine: &mut Engine) {
        let r = &self.0;
        if r.out.is_closed() {
            return;
        }
        let out = r.out.clone();
        let on_text = move |text: &str| text.is_empty() || out.send(Piece::Text(text.to_string())).is_ok();
        let result = match &r.prompt {
            Prompt::Chat(messages) => engine.chat(messages, &r.sampling, on_text),
            Prompt::Complete(prompt) => engine.complete(prompt, &r.sampling, on_text),
        };
        for notice in engine.take_notices() {
            tracing::warn!("{notice}");
        }
        self.finish(result.map(|(g, _)| g));
    }

    /// Ends the job with its result (or why it could not run).
    fn finish(self, result: Result<Generation, LlmError>) {
        let _ = self.0.out.send(Piece::Done(result));
    }
}

/// Hands a job to whoever runs the engine; gives it back if nobody does any more.
pub type Submit = Box<dyn Fn(Job) -> Result<(), Job> + Send + Sync>;

/// The FIFO in front of the engine.
pub(super) struct Queue {
    submit: Submit,
    worker: Option<JoinHandle<()>>,
}

impl Queue {
    /// Starts a thread of its own that owns `engine`.
    pub fn start(mut engine: Engine) -> Self {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("murmur-serve".into())
            .spawn(move || inbox.into_iter().for_each(|job| job.run(&mut engine)))
            .expect("spawning a thread");
        let jobs = std::sync::Mutex::new(jobs);
        let submit: Submit = Box::new(move |job| crate::sync::lock(&jobs).send(job).map_err(|mpsc::SendError(job)| job));
        Self { submit, worker: Some(worker) }
    }

    /// Hands jobs to an engine that runs elsewhere (the assistant's).
    pub fn on(submit: Submit) -> Self {
        Self { submit, worker: None }
    }

    /// Queues a request behind those already waiting; its pieces arrive on the receiver.
    pub fn submit(&self, prompt: Prompt, sampling: Sampling) -> UnboundedReceiver<Piece> {
        let (out, pieces) = unbounded_channel();
        if let Err(job) = (self.submit)(Job(Box::new(Request { prompt, sampling, out }))) {
            job.finish(Err(LlmError::Runtime("the model is not loaded (is Murmur reloading it?); try again".into())));
        }
        pieces
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Dropping the submitter closes the worker's inbox, and its loop ends.
        self.submit = Box::new(Err);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
