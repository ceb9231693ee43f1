//! Audio devices vanishing under the `murmur` CLI: the microphone mid-recording and the
//! speaker mid-speech. Each test runs its own PulseAudio server (so unloading a device cannot
//! disturb other tests) and removes the device while Murmur is using it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use murmur_e2e::murmur;

/// A private PulseAudio server with one device, stopped when dropped.
struct SoundServer {
    dir: tempfile::TempDir,
    daemon: Child,
}

impl SoundServer {
    /// Starts a server whose only device is loaded by `module` (a `load-module` line's rest)
    /// and is the default (`default` is `set-default-sink NAME` or `set-default-source NAME`).
    fn start(module: &str, default: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("native");
        let script = dir.path().join("default.pa");
        std::fs::write(
            &script,
            format!(
                "load-module module-native-protocol-unix socket={} auth-anonymous=1\nload-module {module}\n{default}\n",
                socket.display()
            ),
        )
        .unwrap();
        let daemon = Command::new("pulseaudio")
            .args(["--daemonize=no", "--exit-idle-time=-1", "-n", "--log-target=stderr", "-F"])
            .arg(&script)
            .env("PULSE_RUNTIME_PATH", dir.path())
            .env("HOME", dir.path())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio runs (./dev installs it)");
        let server = Self { dir, daemon };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.pactl(&["info"]).is_none() {
            assert!(Instant::now() < deadline, "the private sound server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("PULSE_SERVER", format!("unix:{}", self.dir.path().join("native").display()))
            .env("XDG_RUNTIME_DIR", self.dir.path());
    }

    /// Runs `pactl ARGS` against this server: its output, if it succeeded.
    fn pactl(&self, args: &[&str]) -> Option<Vec<u8>> {
        let mut cmd = Command::new("pactl");
        self.env(&mut cmd);
        let out = cmd.args(args).stderr(Stdio::null()).output().ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// Whether some client is playing into the server (it has a sink input).
    fn playing(&self) -> bool {
        self.pactl(&["list", "short", "sink-inputs"]).is_some_and(|out| !out.trim_ascii().is_empty())
    }

    /// Unloads every module of `name` (the device vanishes).
    fn unplug(&self, name: &str) {
        assert!(self.pactl(&["unload-module", name]).is_some(), "unloading {name}");
    }
}

impl Drop for SoundServer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn jfk_pcm() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/jfk.wav");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // 16 kHz mono s16le; the data chunk follows a 44-byte header.
    bytes[44..].to_vec()
}

#[test]
fn a_microphone_unplugged_mid_recording_keeps_what_was_said() {
    // The pipe source makes the FIFO it reads from.
    let fifo_dir = tempfile::tempdir().unwrap();
    let fifo = fifo_dir.path().join("mic");
    let server = SoundServer::start(
        &format!("module-pipe-source source_name=mic file={} format=s16le rate=16000 channels=1", fifo.display()),
        "set-default-source mic",
    );
    let mut cmd = murmur();
    server.env(&mut cmd);
    let mut child = cmd.args(["listen", "--seconds", "30"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Murmur says when it listens (loading Whisper first takes a while on a busy machine).
    let mut stderr_lines = BufReader::new(child.stderr.take().unwrap());
    let mut stderr = String::new();
    while !stderr.contains("listening on") {
        assert!(stderr_lines.read_line(&mut stderr).unwrap() > 0, "murmur ended before it listened: {stderr}");
    }
    // Then JFK speaks into the microphone at the pace of speech.
    let pcm = jfk_pcm();
    let speaker = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else { return };
            let start = Instant::now();
            for (i, chunk) in pcm.chunks(3200).enumerate() {
                if f.write_all(chunk).is_err() {
                    return;
                }
                let due = start + Duration::from_millis(100 * (i as u64 + 1));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    };
    // "And so, my fellow Americans" is said in the first 4 seconds; then the microphone goes.
    std::thread::sleep(Duration::from_secs(5));
    let unplugged = Instant::now();
    server.unplug("module-pipe-source");
    stderr_lines.read_to_string(&mut stderr).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the microphone stopped"), "{stderr}");
    // Whisper may clip the last word before the cut ("fellow america"): the phrase is what counts.
    assert!(stdout.contains("fellow america"), "what was said before is lost: {stdout}");
    assert!(!stdout.contains("your country"), "heard after the microphone went: {stdout}");
    assert!(unplugged.elapsed() < Duration::from_secs(20), "listening went on for the full 30 s");
    drop(speaker);
}

#[test]
fn a_speaker_unplugged_mid_speech_is_reported() {
    let server = SoundServer::start("module-null-sink sink_name=speaker", "set-default-sink speaker");
    let mut cmd = murmur();
    server.env(&mut cmd);
    let text = "This is a long sentence that takes a good while to say out loud. Here is a second sentence, \
                which is also rather long. A third sentence follows it. And a fourth one ends the speech.";
    let mut child = cmd.args(["say", text]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The speaker goes once Murmur speaks into it (loading the voice first takes a while on a
    // busy machine), and a moment later, mid-sentence.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.playing() {
        assert!(child.try_wait().unwrap().is_none(), "murmur ended before it spoke");
        assert!(Instant::now() < deadline, "murmur did not start speaking within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    server.unplug("module-null-sink");
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a cut-off speech counted as spoken: {stderr}");
    assert!(stderr.contains("stopped after"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?} to notice", started.elapsed());
    assert!(stderr.matches("audio output failed").count() <= 1, "the failure was logged over and over: {stderr}");
}
