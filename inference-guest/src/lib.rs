//! Murmur's sandboxed model runtime.
//!
//! Runs inside Wasmtime with no filesystem, network or environment: the model file is reached only
//! through the host's `compute` interface, which also runs every heavy kernel. This crate parses
//! GGUF, builds the tokenizer and chat template, drives the llama forward pass, samples, and
//! streams tokens back through `output`.

mod error;
mod generate;
mod gguf;
mod model;
mod sampler;
mod template;
mod tokenizer;

use std::cell::RefCell;

use bindings::exports::murmur::llm::llm::{Generation, Guest, Message, ModelInfo, Sampling};
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

fn with_engine<T>(f: impl FnOnce(&mut Engine) -> error::Result<T>) -> Result<T, String> {
    ENGINE.with_borrow_mut(|e| f(e.as_mut().ok_or(Error::NotLoaded)?)).map_err(|e| e.to_string())
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
        with_engine(|e| e.tokenizer.encode(&text, parse_special))
    }

    fn chat(messages: Vec<Message>, sampling: Sampling) -> Result<Generation, String> {
        with_engine(|e| e.chat(&messages, &sampling))
    }

    fn complete(prompt: String, sampling: Sampling) -> Result<Generation, String> {
        with_engine(|e| e.complete(&prompt, &sampling))
    }
}

bindings::export!(Component with_types_in bindings);
