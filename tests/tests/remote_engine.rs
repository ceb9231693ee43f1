//! The remote engine against a real existing engine: llama.cpp's OpenAI server
//! (`python -m llama_cpp.server`, from llama-cpp-python) on loopback with the default model. The
//! assistant streams from it, speaks it, cancels it on barge-in, says clearly when it goes away,
//! and works again once it is back.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use murmur_core::assistant::{Assistant, AssistantConfig, CaptureFactory, Command as Do, Event, Output, TurnSettings};
use murmur_core::audio::AudioError;
use murmur_core::llm::{LlmConfig, RemoteConfig, Sampling};
use murmur_core::models;
use murmur_e2e::{free_port, murmur, reference_python};
use serde_json::Value;

/// One at a time: each test runs its own llama.cpp server on these two cores.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// llama.cpp's server with the default model, stopped when dropped.
struct LlamaServer {
    child: Child,
    port: u16,
}

impl LlamaServer {
    fn start(port: u16) -> Self {
        let model = models::llm_named("qwen2.5-coder-0.5b");
        let child = Command::new(reference_python())
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--n_ctx", "2048", "--n_threads", "2"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--model")
            .arg(&model)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting llama_cpp.server");
        let server = Self { child, port };
        // uvicorn listens once the model is loaded.
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "llama_cpp.server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ask(url: &str, question: &str) -> std::process::Output {
    murmur().args(["ask", "--llm-url", url, "--temp", "0", "--json", question]).output().unwrap()
}

#[test]
fn murmur_ask_answers_through_llama_cpp_server() {
    let _t = turn();
    let server = LlamaServer::start(free_port());
    let out = ask(&server.url(), "What is the capital of France?");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["answer"].as_str().unwrap().contains("Paris"), "{v}");
    assert_eq!(v["backend"], "remote");
}

#[test]
fn a_voice_turn_through_llama_cpp_server_answers_and_speaks() {
    let _t = turn();
    let server = LlamaServer::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("answer.wav");
    let question = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/question-france.wav");
    let out = murmur()
        .args(["voice", "--llm-url", &server.url(), "--json", "--in"])
        .arg(&question)
        .arg("--speak-to")
        .arg(&wav)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["answer"].as_str().unwrap().contains("Paris"), "{v}");
    assert!(v["timeline"]["audio_seconds"].as_f64().unwrap() > 1.0, "the answer was spoken: {v}");
    let heard = murmur().arg("transcribe").arg(&wav).output().unwrap();
    assert!(
        String::from_utf8_lossy(&heard.stdout).contains("Paris"),
        "the WAV says {:?}",
        String::from_utf8_lossy(&heard.stdout)
    );
}

#[test]
fn an_unreachable_engine_is_a_clear_error() {
    let port = free_port();
    let out = ask(&format!("http://127.0.0.1:{port}/v1"), "Hi");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the model server") && err.contains(&port.to_string()), "{err}");
}

/// A typed-question assistant whose replies come from `url`.
fn remote_assistant(url: &str, max_tokens: u32) -> Assistant {
    let no_mic: CaptureFactory = Box::new(|| Err(AudioError::NoInput("typed questions only".into())));
    let config = AssistantConfig {
        remote: Some(RemoteConfig { url: url.into(), model: None, api_key: None }),
        turn: TurnSettings {
            sampling: Sampling { temperature: 0.0, max_tokens, ..Sampling::default() },
            ..TurnSettings::default()
        },
        speech_model: None,
        output: Output::Silent,
        ..AssistantConfig::new(LlmConfig::new("/the/local/model/is/not/loaded.gguf"))
    };
    Assistant::start(config, no_mic).expect("a remote assistant starts without loading a model")
}

/// What one turn ended with: its reply, or its error.
fn outcome(assistant: &Assistant, within: Duration) -> Result<String, String> {
    let deadline = Instant::now() + within;
    while let Some(event) = assistant.next_event(deadline.saturating_duration_since(Instant::now())) {
        match event {
            Event::Reply { text, .. } => return Ok(text),
            Event::Error { message, .. } => return Err(message),
            _ => {}
        }
    }
    panic!("no reply or error within {within:?}");
}

fn first_token(assistant: &Assistant) {
    while let Some(event) = assistant.next_event(Duration::from_secs(60)) {
        if let Event::Token { .. } = event {
            return;
        }
    }
    panic!("no token came");
}

const ESSAY: &str = "Write a very long, detailed essay about the history of Europe, century by century.";

/// Barge-in closes the remote stream: llama.cpp stops the essay, so the next question is answered
/// at once instead of after the essay's 1,000 tokens.
#[test]
fn barge_in_cancels_the_remote_stream() {
    let _t = turn();
    let server = LlamaServer::start(free_port());
    let assistant = remote_assistant(&server.url(), 1000);
    assistant.send(Do::Ask(ESSAY.into()));
    first_token(&assistant);
    let asked = Instant::now();
    assistant.send(Do::Ask("What is the capital of France?".into()));
    // The interrupted essay's reply comes first, then the new question's.
    let mut answer = outcome(&assistant, Duration::from_secs(60));
    if !answer.as_ref().is_ok_and(|a| a.contains("Paris")) {
        answer = outcome(&assistant, Duration::from_secs(60));
    }
    let answer = answer.expect("the second question is answered");
    assert!(answer.contains("Paris"), "{answer}");
    assert!(asked.elapsed() < Duration::from_secs(10), "answered after {:?}: the essay went on", asked.elapsed());
}

/// The engine stopping mid-reply gives the user a clear error; once it is back, the next
/// question works.
#[test]
fn an_engine_that_stops_mid_reply_is_a_clear_error_and_its_return_is_used() {
    let _t = turn();
    let port = free_port();
    let mut server = LlamaServer::start(port);
    let assistant = remote_assistant(&server.url(), 1000);
    assistant.send(Do::Ask(ESSAY.into()));
    first_token(&assistant);
    server.stop();
    let error = outcome(&assistant, Duration::from_secs(30)).expect_err("the reply cannot finish");
    assert!(error.contains("model server") && error.contains(&port.to_string()), "{error}");
    assistant.send(Do::Ask("What is the capital of France?".into()));
    let error = outcome(&assistant, Duration::from_secs(30)).expect_err("nothing answers while it is down");
    assert!(error.contains("cannot reach the model server"), "{error}");
    let _back = LlamaServer::start(port);
    assistant.send(Do::Ask("What is the capital of France?".into()));
    let answer = outcome(&assistant, Duration::from_secs(60)).expect("answered once the server is back");
    assert!(answer.contains("Paris"), "{answer}");
}
