//! Just enough W3C WebDriver to drive the real app: Xvfb, WebKitWebDriver (Debian's
//! `webkit2gtk-driver`, which launches the app with automation on, as tauri-driver would), and a
//! plain HTTP/1.1 client.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any wait for the app may take.
pub const PATIENCE: Duration = Duration::from_secs(90);
/// How long one WebDriver request may take before it is sent again (a connection the driver
/// dropped without answering).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A headless X display and a WebDriver server on it.
pub struct Driver {
    xvfb: Child,
    driver: Child,
    port: u16,
    display: String,
    /// Released last, once the processes above are gone.
    _turn: MutexGuard<'static, ()>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Driver {
    /// Starts Xvfb and WebKitWebDriver; the app will keep its history and settings in `data`.
    /// One at a time: several apps loading models at once on a small machine starve each other.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// Like [`Driver::start`], the app also getting the environment variables `env`.
    pub fn start_with(data: &Path, env: &[(&str, &Path)]) -> Self {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let display = 90 + std::process::id() % 800;
        let xvfb = Command::new("Xvfb")
            .args([format!(":{display}").as_str(), "-screen", "0", "1100x760x24", "-nolisten", "tcp"])
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (Debian package xvfb)");
        wait_for("the X display", || Path::new(&format!("/tmp/.X11-unix/X{display}")).exists().then_some(()));
        let port = free_port();
        let driver = Command::new("WebKitWebDriver")
            .arg(format!("--port={port}"))
            .env("DISPLAY", format!(":{display}"))
            .env("TAURI_WEBVIEW_AUTOMATION", "true")
            .env("MURMUR_DATA_DIR", data)
            .env("GDK_BACKEND", "x11")
            .env("NO_AT_BRIDGE", "1")
            // No session bus unless a test brings its own: a desktop's bus would let one test's
            // app hand over to another's (the single-instance plugin finds them there).
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("WebKitWebDriver runs (Debian package webkit2gtk-driver)");
        let me = Self { xvfb, driver, port, display: format!(":{display}"), _turn: turn };
        wait_for("WebKitWebDriver", || me.http("GET", "/status", None).ok());
        me
    }

    /// One HTTP request; retried on a dropped connection.
    fn http(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut last = String::new();
        for _ in 0..3 {
            let attempt = || -> std::io::Result<Vec<u8>> {
                let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
                s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
                write!(
                    s,
                    "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                let mut out = Vec::new();
                s.read_to_end(&mut out)?;
                Ok(out)
            };
            match attempt() {
                Ok(raw) => {
                    let text = String::from_utf8_lossy(&raw);
                    let json = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                    let v: Value = serde_json::from_str(json).map_err(|e| format!("{e}: {text}"))?;
                    if let Some(err) = v["value"]["error"].as_str() {
                        return Err(format!("{err}: {}", v["value"]["message"]));
                    }
                    return Ok(v["value"].clone());
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(last)
    }

    /// The X display the app runs on (`:N`).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Presses (`keydown`) or lets go of (`keyup`) `keys` on the display, as a user would,
    /// whichever window has the focus (Debian package xdotool).
    pub fn keys(&self, action: &str, keys: &str) {
        let ok = Command::new("xdotool").args([action, keys]).env("DISPLAY", &self.display).status().expect("xdotool runs");
        assert!(ok.success(), "xdotool {action} {keys}");
    }

    /// Types `text` into the native window titled `title` (a file dialog, outside the webview)
    /// once it appears, in its location field (Ctrl+L), and presses Return.
    pub fn type_into_window(&self, title: &str, text: &str) {
        let xdotool = |args: &[&str]| {
            Command::new("timeout")
                .arg("30")
                .arg("xdotool")
                .args(args)
                .env("DISPLAY", &self.display)
                .stdout(Stdio::null())
                .status()
                .expect("xdotool runs")
                .success()
        };
        assert!(
            xdotool(&["search", "--sync", "--onlyvisible", "--name", title, "windowfocus", "--sync"]),
            "no window titled {title:?}"
        );
        // The window is mapped before its widgets take keys, later on a busy machine: typing
        // that went nowhere is typed again.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(1000));
            // The location field in an open dialog, the name field in a save dialog (whose
            // suggested name is replaced whole).
            xdotool(&["key", "ctrl+l"]);
            std::thread::sleep(Duration::from_millis(300));
            xdotool(&["key", "ctrl+a"]);
            xdotool(&["type", "--delay", "10", text]);
            // Return takes the completion GTK offers, if it shows one, and then the file.
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(500));
                if !xdotool(&["search", "--onlyvisible", "--name", title]) {
                    return;
                }
                xdotool(&["key", "Return"]);
            }
        }
        panic!("the window titled {title:?} is still open after the file was typed three times");
    }

    /// Launches the app (`args` on its command line) in a new session.
    pub fn launch(&self, app: &Path, args: &[&str]) -> Session<'_> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "webkitgtk:browserOptions": {"binary": app, "args": args},
        }}});
        let v = self.http("POST", "/session", Some(&caps)).expect("a WebDriver session with the app");
        let session = Session { driver: self, path: format!("/session/{}", v["sessionId"].as_str().unwrap()) };
        session.wait("the window", "return document.readyState === 'complete' && !!document.querySelector('#log')");
        session
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for child in [&mut self.driver, &mut self.xvfb] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The app in one WebDriver session; closing the session quits the app.
pub struct Session<'a> {
    driver: &'a Driver,
    path: String,
}

impl Session<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("{}{path}", self.path);
        self.driver.http(method, &full, body.as_ref()).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Runs `script` (a function body) in the page.
    pub fn js(&self, script: &str) -> Value {
        self.try_js(script).unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    fn try_js(&self, script: &str) -> Result<Value, String> {
        let body = json!({"script": script, "args": []});
        let run = || self.driver.http("POST", &format!("{}/execute/sync", self.path), Some(&body));
        // WebKitWebDriver now and then loses a script's result on the way back from a busy
        // page ("Could not parse script result": once in about 5,000 polls while replies
        // streamed); the page is fine and the same script answers when asked again.
        let mut result = run();
        for _ in 0..3 {
            match &result {
                Err(e) if e.contains("Could not parse script result") => {
                    std::thread::sleep(Duration::from_millis(50));
                    result = run();
                }
                _ => break,
            }
        }
        result
    }

    /// Polls `script` until it returns something truthy; returns that. (A failed poll, as
    /// while the page is still loading, counts as not yet.)
    pub fn wait(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.try_js(script);
            match &v {
                Ok(v) if !(v.is_null() || *v == json!(false) || *v == json!("") || *v == json!(0)) => return v.clone(),
                _ => assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}; last: {v:?}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element id").to_string()
    }

    /// Clicks the element `css`.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Types `text` into the element `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/value"), Some(json!({"text": text})));
    }

    /// Holds the mouse button down on `css` until `until` returns true, then lets go.
    pub fn hold(&self, css: &str, until: impl Fn(&Self) -> bool) {
        let at = self.js(&format!(
            "const r = document.querySelector({css:?}).getBoundingClientRect(); return [Math.round(r.x + r.width / 2), Math.round(r.y + r.height / 2)]"
        ));
        let pointer = |actions: Value| json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": actions}]});
        self.call(
            "POST",
            "/actions",
            Some(pointer(json!([
                {"type": "pointerMove", "origin": "viewport", "x": at[0], "y": at[1]},
                {"type": "pointerDown", "button": 0},
            ]))),
        );
        let deadline = Instant::now() + PATIENCE;
        while !until(self) {
            assert!(Instant::now() < deadline, "the hold never took effect");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.call("POST", "/actions", Some(pointer(json!([{"type": "pointerUp", "button": 0}]))));
    }

    /// Holds the key `key` (a WebDriver key value, such as `"\u{E00D}"` for Space) down in the
    /// focused element until `until` returns true, then lets go.
    pub fn hold_key(&self, key: &str, until: impl Fn(&Self) -> bool) {
        let keys =
            |kind: &str| json!({"actions": [{"type": "key", "id": "keyboard", "actions": [{"type": kind, "value": key}]}]});
        self.call("POST", "/actions", Some(keys("keyDown")));
        let deadline = Instant::now() + PATIENCE;
        while !until(self) {
            assert!(Instant::now() < deadline, "holding the key never took effect");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.call("POST", "/actions", Some(keys("keyUp")));
    }

    /// Makes the window whose URL `wanted` accepts the one commands go to (waiting for it).
    pub fn switch_to(&self, wanted: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            for handle in self.call("GET", "/window/handles", None).as_array().cloned().unwrap_or_default() {
                self.call("POST", "/window", Some(json!({"handle": handle})));
                if self.try_js("return location.href").is_ok_and(|url| url.as_str().is_some_and(&wanted)) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no such window");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG screenshot of the window to `target/screenshots/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = base64_decode(self.call("GET", "/screenshot", None).as_str().expect("base64"));
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Kills the app at once (SIGKILL), as a crash or a power cut would, and ends the session.
    pub fn crash(self) {
        let children = Command::new("pgrep").args(["-P", &self.driver.driver.id().to_string()]).output().expect("pgrep runs");
        let pids = String::from_utf8_lossy(&children.stdout).split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert!(!pids.is_empty(), "the app is not running under the driver");
        let killed = Command::new("kill").arg("-KILL").args(&pids).status().expect("kill runs");
        assert!(killed.success());
        let _ = self.driver.http("DELETE", &self.path, None);
    }

    /// Closes the session, which quits the app.
    pub fn quit(self) {
        let _ = self.driver.http("DELETE", &self.path, None);
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Standard base64 (what WebDriver screenshots use).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !b"=\r\n".contains(c)).map(value).collect();
    bytes
        .chunks(4)
        .flat_map(|q| {
            let n = q.iter().enumerate().fold(0u32, |n, (i, &v)| n | (u32::from(v) << (18 - 6 * i)));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.into_iter().take(q.len() - 1)
        })
        .collect()
}
