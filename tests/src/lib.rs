//! End-to-end tests live in `tests/`; this crate holds what they share.

use std::path::PathBuf;
use std::process::Command;

/// The release `murmur` CLI (or `$MURMUR_BIN`), ready to be given arguments.
pub fn murmur() -> Command {
    let bin = std::env::var_os("MURMUR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/murmur"));
    assert!(bin.exists(), "{} is missing: build with `cargo build --release` (./dev test does)", bin.display());
    Command::new(bin)
}

/// SmolLM2, the catalog's quickest chat model (a catalog id `--model` accepts): tests of
/// anything but the default model's answers (durability, soak, GPU counts, token ids) run it.
pub const QUICK_MODEL: &str = "smollm2-135m";

/// The Python of the reference environment that `./dev test` sets up (llama-cpp-python with its
/// OpenAI server, the `openai` and `jsonschema` packages), or `$MURMUR_REFERENCE_PYTHON`.
pub fn reference_python() -> PathBuf {
    let python = std::env::var_os("MURMUR_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| murmur_core::paths::cache_dir().join("reference-venv/bin/python"));
    assert!(python.exists(), "{} is missing: ./dev test sets it up", python.display());
    python
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `command` for the rest of the test binary's life and returns the first line of its
/// standard error that contains `ready` (the rest is passed on to the test's output). It is
/// started from a thread that never ends and asks the kernel to kill it when that thread's
/// process exits, so a server shared by a binary's tests never outlives them.
pub fn spawn_for_binary(mut command: Command, ready: &'static str) -> String {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.stderr(std::process::Stdio::piped()).spawn().expect("starting the server");
        let stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
        let mut tx = Some(tx);
        for line in stderr.lines().map_while(Result::ok) {
            eprintln!("[server] {line}");
            if line.contains(ready) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
        let status = child.wait();
        drop(tx);
        eprintln!("[server] exited: {status:?}");
        loop {
            std::thread::park();
        }
    });
    rx.recv_timeout(std::time::Duration::from_secs(120)).expect("the server did not say it was ready (see its output above)")
}
