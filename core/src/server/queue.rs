//! The engine's thread: requests run one at a time, in the order they arrived.
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

struct Job {
    prompt: Prompt,
    sampling: Sampling,
    out: UnboundedSender<Piece>,
}

/// The FIFO in front of the one engine.
pub(super) struct Queue {
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl Queue {
    /// Starts the engine's thread.
    pub fn start(mut engine: Engine) -> Self {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("murmur-serve".into())
            .spawn(move || {
                for job in inbox {
                    if job.out.is_closed() {
                        continue;
                    }
                    let out = job.out.clone();
                    let on_text = move |text: &str| text.is_empty() || out.send(Piece::Text(text.to_string())).is_ok();
                    let result = match &job.prompt {
                        Prompt::Chat(messages) => engine.chat(messages, &job.sampling, on_text),
                        Prompt::Complete(prompt) => engine.complete(prompt, &job.sampling, on_text),
                    };
                    for notice in engine.take_notices() {
                        tracing::warn!("{notice}");
                    }
                    let _ = job.out.send(Piece::Done(result.map(|(g, _)| g)));
                }
            })
            .expect("spawning a thread");
        Self { jobs: Some(jobs), worker: Some(worker) }
    }

    /// Queues a request behind those already waiting; its pieces arrive on the receiver.
    pub fn submit(&self, prompt: Prompt, sampling: Sampling) -> UnboundedReceiver<Piece> {
        let (out, pieces) = unbounded_channel();
        let job = Job { prompt, sampling, out };
        if let Err(mpsc::SendError(job)) = self.jobs.as_ref().expect("open until dropped").send(job) {
            let _ = job.out.send(Piece::Done(Err(LlmError::Runtime("the model's thread has stopped".into()))));
        }
        pieces
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
