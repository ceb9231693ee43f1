//! The guest's error type; it crosses the WIT boundary as text.

use crate::bindings::murmur::llm::compute::ComputeError;

/// Anything that can go wrong inside the guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file is malformed or incomplete.
    #[error("{0}")]
    Model(String),
    /// The model uses something Murmur does not implement.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The tokenizer could not be built or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to render.
    #[error("chat template: {0}")]
    Template(String),
    /// The host refused a kernel call.
    #[error("compute: {0}")]
    Compute(String),
    /// A request came before `load`.
    #[error("no model is loaded")]
    NotLoaded,
    /// The request does not fit the context window.
    #[error("{0}")]
    Context(String),
    /// The request asks for something that cannot be done (a schema that does not compile).
    #[error("{0}")]
    Invalid(String),
}

impl From<ComputeError> for Error {
    fn from(e: ComputeError) -> Self {
        let text = match e {
            ComputeError::BadHandle(m) => format!("bad tensor handle: {m}"),
            ComputeError::BadShape(m) => format!("shape mismatch: {m}"),
            ComputeError::OutOfRange(m) => format!("out of range: {m}"),
            ComputeError::Unsupported(m) => format!("unsupported: {m}"),
            ComputeError::Exhausted(m) => format!("out of memory: {m}"),
            ComputeError::Device(m) => format!("device failure: {m}"),
        };
        Error::Compute(text)
    }
}

/// Guest result type.
pub type Result<T> = std::result::Result<T, Error>;
