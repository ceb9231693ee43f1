//! Murmur's sandboxed model runtime.
//!
//! Runs inside Wasmtime with no filesystem, network or environment: the model file is reached only
//! through the host's `compute` interface, which also runs every heavy kernel. This crate parses
//! GGUF, builds the tokenizer and chat template, drives the llama forward pass, samples, and
//! streams tokens back through `output`.

// The fuzz targets build this crate natively, where the component's entry points are not
// exported and the code only they reach is unused.
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]

mod error;
mod generate;
mod gguf;
mod grammar;
mod model;
mod sampler;
mod spm;
mod template;
mod tokenizer;

use std::cell::RefCell;

use bindings::exports::murmur::llm::llm::{Generation, Guest, Message, ModelInfo, RequestError, Sampling};
use error::Error;
use generate::Engine;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "inference",
    });
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

fn with_engine<T>(f: impl FnOnce(&mut Engine) -> error::Result<T>) -> Result<T, Error> {
    ENGINE.with_borrow_mut(|e| f(e.as_mut().ok_or(Error::NotLoaded)?))
}

/// A request's failure as the contract names it.
fn request_error(e: Error) -> RequestError {
    match e {
        Error::Context(m) => RequestError::TooLong(m),
        Error::Invalid(m) => RequestError::Invalid(m),
        e => RequestError::Failed(e.to_string()),
    }
}

struct Component;

impl Guest for Component {
    fn load(context_length: u32, batch: u32) -> Result<ModelInfo, String> {
        let engine = Engine::load(context_length, batch).map_err(|e| e.to_string())?;
        let info = engine.info();
        ENGINE.with_borrow_mut(|e| *e = Some(engine));
        Ok(info)
    }

    fn tokenize(text: String, parse_special: bool) -> Result<Vec<u32>, String> {
        with_engine(|e| e.tokenizer.encode(&text, parse_special)).map_err(|e| e.to_string())
    }

    fn chat(messages: Vec<Message>, sampling: Sampling) -> Result<Generation, RequestError> {
        with_engine(|e| e.chat(&messages, &sampling)).map_err(request_error)
    }

    fn complete(prompt: String, sampling: Sampling) -> Result<Generation, RequestError> {
        with_engine(|e| e.complete(&prompt, &sampling)).map_err(request_error)
    }
}

// Exported only from the component: a native build (the fuzz targets) links the parsers
// without the component's entry points, whose names a native linker cannot take.
#[cfg(target_family = "wasm")]
bindings::export!(Component with_types_in bindings);

/// Entry points for the fuzz targets in `fuzz/` (built natively with `--cfg fuzzing`): the
/// parsers that see untrusted model files, fed from bytes instead of the host.
#[cfg(fuzzing)]
pub mod fuzzing {
    use crate::bindings::exports::murmur::llm::llm::Message;
    use crate::gguf::Gguf;
    use crate::model::Config;
    use crate::template::{self, ChatTemplate};
    use crate::tokenizer::Tokenizer;

    /// Parses `data` as a GGUF file and, where that succeeds, builds what `load` builds from
    /// its metadata: the model shape, the tokenizer (then encodes a line) and the chat template.
    pub fn gguf(data: &[u8]) {
        let Ok(g) = Gguf::parse(data) else { return };
        let arch = Config::from_gguf(&g).map(|c| c.arch).unwrap_or_default();
        if let Ok(mut tokenizer) = Tokenizer::from_gguf(&g) {
            let _ = tokenizer.encode("<|im_start|>user\nHello, world!<|im_end|>", true);
            let source = template::source_for(g.str("tokenizer.chat_template"), &arch);
            if let Ok(t) = ChatTemplate::new(source, tokenizer.text(tokenizer.bos), tokenizer.text(tokenizer.eos)) {
                let _ = t.render(&[Message { role: "user".into(), content: "Hi".into() }]);
            }
        }
    }

    /// Compiles the text before the first NUL of `data` as a chat template and renders the
    /// conversation after it (`role:content` lines).
    pub fn template(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let (source, chat) = text.split_once('\0').unwrap_or((&text, "user:Hi"));
        let messages: Vec<Message> = chat
            .lines()
            .map(|l| {
                let (role, content) = l.split_once(':').unwrap_or(("user", l));
                Message { role: role.into(), content: content.into() }
            })
            .collect();
        if let Ok(t) = ChatTemplate::new(source, "<s>", "</s>") {
            let _ = t.render(&messages);
        }
    }
}
