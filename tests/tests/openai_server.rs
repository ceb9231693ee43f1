//! `murmur serve` driven by the real `openai` Python package (`tests/clients/openai_client.py`)
//! and by plain HTTP for the error cases. One server with the default model and an API key
//! serves the whole binary; its tests take turns, so a timing one is not queued behind another.

use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use murmur_e2e::{murmur, reference_python, spawn_for_binary};
use serde_json::Value;

const KEY: &str = "murmur-test-key";
const MODEL: &str = "qwen2.5-coder-0.5b";
/// The one origin the shared server lets browsers in from (`CORS_ORIGIN` in the client script).
const CORS_ORIGIN: &str = "http://localhost:3000";

/// The shared server's base URL (`http://127.0.0.1:PORT/v1`).
fn base_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let mut serve = murmur();
        serve.args(["serve", "--port", "0", "--api-key", KEY, "--model", MODEL, "--cors", CORS_ORIGIN]);
        let ready = spawn_for_binary(serve, "serving ");
        let at = ready.find("http://").expect("the address");
        ready[at..].split_whitespace().next().expect("the address").to_string()
    })
}

/// One test at a time: the server answers one request at a time anyway.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one case of the client script and returns what it reports.
fn client(case: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/openai_client.py");
    let out = Command::new(reference_python()).args([script, base_url(), KEY, MODEL, case]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{case}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{case}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not text: {v}"))
}

#[test]
fn lists_the_model() {
    let _t = turn();
    assert_eq!(client("models")["ids"], serde_json::json!([MODEL]));
}

#[test]
fn a_chat_completion_answers_paris() {
    let _t = turn();
    let v = client("paris");
    assert!(text(&v["text"]).contains("Paris"), "{v}");
    assert_eq!(v["finish"], "stop", "{v}");
    assert!(v["tokens"].as_u64().unwrap() > 1, "usage counts the reply's tokens: {v}");
}

#[test]
fn streaming_gives_the_same_text_in_chunks() {
    let _t = turn();
    let v = client("streaming");
    assert!(v["chunks"].as_u64().unwrap() > 3, "{v}");
    assert_eq!(v["streamed"], v["plain"], "at temperature 0 a stream says what a plain reply says");
    assert!(v["usage"].as_u64().is_some_and(|n| n >= v["chunks"].as_u64().unwrap()), "usage at the end: {v}");
    assert_eq!(v["finish"], "stop", "{v}");
}

#[test]
fn the_same_seed_repeats_the_reply() {
    let _t = turn();
    let v = client("seed");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs[0], runs[1], "seed 7 twice at temperature 1");
    assert!(!text(&runs[0]).is_empty());
}

#[test]
fn a_stop_string_ends_the_reply_before_it() {
    let _t = turn();
    let v = client("stop");
    assert!(text(&v["free"]).contains("5, 6"), "without the stop string the count goes on: {v}");
    let stopped = text(&v["stopped"]);
    assert!(stopped.contains("4") && !stopped.contains('5'), "{v}");
    assert_eq!(v["finish"], "stop", "{v}");
}

/// Ten schemas (objects, required and optional properties, additionalProperties, arrays with
/// bounds, enums, consts, strings with a length cap, numbers, integers with a range, booleans,
/// null, nesting, a top-level array): every reply parses and validates.
#[test]
fn ten_json_schemas_all_validate() {
    let _t = turn();
    let v = client("schemas");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    let failed: Vec<&Value> = results.iter().filter(|r| !r["error"].is_null()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(results.iter().all(|r| r["finish"] == "stop"), "{results:#?}");
    let object = client("json_object");
    assert_eq!(object["parsed"], true, "json_object gives an object: {object}");
}

#[test]
fn a_client_that_disconnects_mid_stream_frees_the_server() {
    let _t = turn();
    let v = client("disconnect");
    let (idle, after) = (v["idle"].as_f64().unwrap(), v["after"].as_f64().unwrap());
    assert!(after - idle < 1.0, "the next request waited {after:.2} s (idle: {idle:.2} s): the essay went on");
}

#[test]
fn a_wrong_api_key_is_refused() {
    let _t = turn();
    let v = client("wrong_key");
    assert_eq!(v["status"], 401, "{v}");
    assert_eq!(v["body"]["code"], "invalid_api_key", "{v}");
}

#[test]
fn four_concurrent_clients_each_get_their_own_answer() {
    let _t = turn();
    let v = client("concurrent");
    for (country, capital) in v["capitals"].as_object().unwrap() {
        let answer = text(&v["answers"][country]);
        assert!(answer.contains(text(capital)), "{country}: {answer}");
    }
}

/// The second request of a conversation reuses the first one's KV cache, and says so in `usage`.
#[test]
fn a_conversation_reuses_its_cached_prefix() {
    let _t = turn();
    let v = client("conversation");
    assert!(text(&v["first"]).contains("Rome"), "{v}");
    let cached = v["cached"].as_u64().unwrap();
    assert!(cached >= v["first_prompt"].as_u64().unwrap(), "the whole first prompt is reused: {v}");
    assert!(cached < v["second_prompt"].as_u64().unwrap(), "{v}");
}

/// `--cors ORIGIN` lets that origin's browser pages in, and no other.
#[test]
fn only_the_given_origin_passes_cors() {
    let _t = turn();
    let v = client("cors");
    assert_eq!(v["allowed"], CORS_ORIGIN, "{v}");
    assert!(v["other"].is_null(), "{v}");
}

/// Bad requests get OpenAI's error object with the right status and code.
#[test]
fn bad_requests_get_openai_errors() {
    let _t = turn();
    let v = client("errors");
    let expect = |case: &str, status: u64, code: Option<&str>, says: &str| {
        let r = &v[case];
        assert_eq!(r["status"], status, "{case}: {r}");
        let error = &r["body"]["error"];
        if let Some(code) = code {
            assert_eq!(error["code"], code, "{case}: {r}");
        }
        assert!(text(&error["message"]).contains(says), "{case}: {r}");
        assert!(error["type"].is_string(), "{case}: {r}");
    };
    expect("bad_json", 400, None, "not valid JSON");
    expect("unknown_model", 404, Some("model_not_found"), "gpt-9");
    expect("unsupported", 400, Some("unsupported_parameter"), "'n'");
    expect("too_long", 400, Some("context_length_exceeded"), "too long");
    expect("bad_schema", 400, None, "no-such-type");
    expect("no_key", 401, Some("invalid_api_key"), "Bearer");
    let completion = &v["completion"];
    assert_eq!(completion["status"], 200, "{completion}");
    assert!(text(&completion["body"]["choices"][0]["text"]).contains("Paris"), "{completion}");
}

/// Murmur's remote engine pointed at Murmur's own server, end to end.
#[test]
fn murmur_ask_through_murmur_serve() {
    let _t = turn();
    let out = murmur()
        .args(["ask", "--llm-url", base_url(), "--llm-api-key", KEY, "--temp", "0", "--json", "What is the capital of France?"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(text(&v["answer"]).contains("Paris"), "{v}");
    assert_eq!(v["backend"], "remote", "{v}");
}
