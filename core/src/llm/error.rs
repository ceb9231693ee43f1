//! What can go wrong running the LLM.

use std::path::PathBuf;

use super::RequestError;

/// What can go wrong running the LLM.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model file could not be opened (front ends say how to fetch or pick one).
    #[error("cannot open the model file {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also its source: a report would say it twice).
        reason: std::io::Error,
    },
    /// The GPU backend was asked for and no GPU can run it (front ends say how to pick another).
    #[error("the GPU backend is unavailable: {0}")]
    NoGpu(String),
    /// The guest refused the model or the request; its message says why.
    #[error("{0}")]
    Guest(String),
    /// The prompt does not fit the model's context window.
    #[error("{0}")]
    TooLong(String),
    /// The request asks for something that cannot be done (such as a JSON schema that does not
    /// compile); the text names it.
    #[error("{0}")]
    Invalid(String),
    /// The sandbox stopped the guest (memory cap, interruption, or a guest bug).
    #[error("the model runtime stopped: {0}")]
    Trap(String),
    /// The guest component could not be compiled or instantiated.
    #[error("cannot start the model runtime: {0}")]
    Runtime(String),
    /// The GPU failed during the request (the CPU takes over where it can).
    #[error("{0}")]
    DeviceLost(String),
    /// The model needs more memory than the machine has free.
    #[error(
        "the model {path} needs about {:.1} GB of memory (its weights as the kernels hold them) but only {:.1} GB is free; \
         close other programs or pick a smaller model",
        *needed as f64 / 1e9,
        *available as f64 / 1e9
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes it needs.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// A remote engine could not be reached or failed; the text says which and what to do.
    #[error("{0}")]
    Remote(String),
    /// The model file changed while it was being read.
    #[error(
        "the model file {0} changed while it was being read; wait until whatever is writing it has finished, then try again"
    )]
    Changed(PathBuf),
}

impl From<String> for LlmError {
    /// A guest's refusal in words.
    fn from(message: String) -> Self {
        Self::Guest(message)
    }
}

impl From<RequestError> for LlmError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::TooLong(m) => Self::TooLong(m),
            RequestError::Invalid(m) => Self::Invalid(m),
            RequestError::Failed(m) => Self::Guest(m),
        }
    }
}
