//! The sandbox against a hostile guest (`tests/hostile-guest`, built here for wasm32-wasip2):
//! forged and stale handles, another session's handles, out-of-range reads, weights and rows,
//! wrong shapes and kinds, floods of allocations, a guest that spins or hogs memory, and one
//! that reaches for files, sockets and the environment. Every attempt gets an error or stops
//! the guest; the host keeps serving and never hands out bytes beyond the guest's own tensors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use murmur_core::llm::{BackendChoice, Llm, LlmConfig, LlmError, Sandbox};

/// The first floats of the test's "model" file: what a planted tensor holds.
const SECRET: [f32; 8] = [1234.5, -77.25, 3.0, 9.5, 42.0, -1.0, 0.5, 8.0];
/// The test's model file: [`SECRET`], then 4 MiB of a counter.
const MODEL_BYTES: usize = 4 << 20;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The hostile guest component, built once per test run.
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    Arc::clone(SANDBOX.get_or_init(|| {
        let target = root().join("target/hostile-guest");
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(root())
            .args(["build", "--release", "--locked", "-p", "murmur-hostile-guest", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(&target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the hostile guest failed");
        let wasm = std::fs::read(target.join("wasm32-wasip2/release/murmur_hostile_guest.wasm")).expect("the guest was built");
        Sandbox::with_guest(&wasm).expect("the hostile guest compiles")
    }))
}

fn model_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let mut bytes: Vec<u8> = SECRET.iter().flat_map(|f| f.to_le_bytes()).collect();
        bytes.extend((0..MODEL_BYTES - bytes.len()).map(|i| i as u8));
        let path = std::env::temp_dir().join(format!("murmur-hostile-model-{}.bin", std::process::id()));
        std::fs::write(&path, bytes).expect("writing the test model");
        path
    })
}

fn config() -> LlmConfig {
    let mut cfg = LlmConfig::new(model_file());
    cfg.backend = BackendChoice::Cpu;
    cfg.threads = 1;
    cfg.host_memory = 64 << 20;
    cfg.guest_memory = 64 << 20;
    cfg.stall_limit = Duration::from_secs(1);
    cfg
}

fn session() -> Llm {
    Llm::load_in(sandbox(), config()).expect("the hostile guest loads")
}

/// Runs `case` and returns its report: (op, outcome) per line.
fn report(llm: &mut Llm, case: &str) -> Vec<(String, String)> {
    match llm.tokenize(case, false) {
        Err(LlmError::Guest(text)) => text
            .lines()
            .map(|l| {
                let (op, outcome) = l.split_once(": ").expect("op: outcome");
                (op.to_string(), outcome.to_string())
            })
            .collect(),
        other => panic!("{case}: expected a report, got {other:?}"),
    }
}

/// Asserts that each op of `case` was refused with the named `compute-error` case.
fn assert_refused(llm: &mut Llm, case: &str, expected: &[(&str, &str)]) {
    let got = report(llm, case);
    assert_eq!(got.len(), expected.len(), "{case}: {got:#?}");
    for ((op, outcome), (want_op, want)) in got.iter().zip(expected) {
        assert_eq!(op, want_op);
        assert!(outcome.starts_with(&format!("ComputeError::{want}")), "{op}: expected {want}, got {outcome}");
    }
}

/// After a trap, the next request starts a fresh guest and works.
fn assert_serves(llm: &mut Llm) {
    assert_eq!(llm.tokenize("ping", false).expect("the next request works"), [1]);
}

#[test]
fn reads_and_tensors_outside_the_file_or_the_caps_are_refused() {
    let mut llm = session();
    assert_refused(
        &mut llm,
        "read-model",
        &[
            ("read past the end", "OutOfRange"),
            ("read at u64::MAX", "OutOfRange"),
            ("read wrapping around", "OutOfRange"),
            ("read 4 GiB", "OutOfRange"),
        ],
    );
    assert_refused(
        &mut llm,
        "weights",
        &[
            ("weight past the end", "OutOfRange"),
            ("weight at u64::MAX", "OutOfRange"),
            ("weight of u32::MAX x u32::MAX", "OutOfRange"),
            ("weight of no rows", "OutOfRange"),
            ("weight with a partial block", "BadShape"),
        ],
    );
    assert_refused(
        &mut llm,
        "activations",
        &[
            ("activation of no rows", "BadShape"),
            ("activation of u32::MAX x u32::MAX", "BadShape"),
            ("activation of 16 GiB", "Exhausted"),
        ],
    );
}

#[test]
fn misused_ops_are_refused_and_valid_ones_still_work() {
    let mut llm = session();
    let got = report(&mut llm, "misuse");
    let (valid, misused): (Vec<_>, Vec<_>) = got.iter().partition(|(op, _)| op.starts_with("a valid"));
    assert_eq!(misused.len(), 32, "{got:#?}");
    for (op, outcome) in misused {
        let want = if op.contains("an activation") || op.contains("of a weight") {
            "BadHandle"
        } else if op.contains("past") {
            "OutOfRange"
        } else {
            "BadShape"
        };
        // Penalising tokens past the row ignores them, as a sampler asking for them would expect.
        // A top-k larger than the host reads back gets the most it does (the one rule is the
        // host's).
        if op == "penalty of tokens past the row" || op == "top-k of 100000" {
            assert_eq!(outcome, "ok");
            continue;
        }
        assert!(outcome.starts_with(&format!("ComputeError::{want}")), "{op}: expected {want}, got {outcome}");
    }
    assert_eq!(valid.len(), 2);
    assert!(valid.iter().all(|(_, outcome)| outcome == "ok"), "{valid:?}");
}

#[test]
fn floods_of_allocations_hit_a_cap_and_freeing_makes_room_again() {
    let mut llm = session();
    let floods = [
        ("flood-activations", "1 MiB activation", 64),
        ("flood-handles", "1x1 activation", 65_536),
        // The CPU backend reads F32 weights in place; the cap counts them all the same.
        ("flood-weights", "whole-file weight", 2),
    ];
    for (case, what, limit) in floods {
        let got = report(&mut llm, case);
        assert_eq!(got.len(), 2, "{got:?}");
        let (op, outcome) = &got[0];
        let held: usize = op.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a count");
        assert!(held <= limit, "{case}: {held} held, the cap is {limit}");
        assert!(outcome.starts_with("ComputeError::Exhausted"), "{case}: {outcome}");
        assert_eq!(got[1], (format!("{what} once freed"), "ok".to_string()));
    }
}

#[test]
fn forged_and_stale_handles_stop_the_guest_and_the_next_request_works() {
    let mut llm = session();
    for case in ["forged-handle", "use-after-drop"] {
        match llm.tokenize(case, false) {
            Err(LlmError::Trap(why)) => assert!(why.contains("handle"), "{case}: {why}"),
            other => panic!("{case}: expected a trap, got {other:?}"),
        }
        assert_serves(&mut llm);
    }
}

#[test]
fn another_sessions_handles_reach_nothing_of_it() {
    let secret: Vec<u32> = SECRET.iter().map(|f| f.to_bits()).collect();
    let mut a = session();
    let planted = a.tokenize("plant", false).expect("planting works");
    let handles = planted.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    // The probe can see a secret where one is reachable: session A reads its own tensor back.
    let own = a.tokenize(&format!("probe:{handles}"), false).expect("A reads its own tensor");
    assert!(secret.iter().all(|s| own.contains(s)), "A's own read lacks its secret: {own:?}");
    // Session B, given A's handle numbers (and a few around them), reads nothing of A's.
    let mut b = session();
    let guesses: Vec<String> = (0..16).chain(planted.iter().copied()).map(|h| h.to_string()).collect();
    match b.tokenize(&format!("probe:{}", guesses.join(",")), false) {
        Ok(bits) => assert!(bits.iter().all(|b| !secret.contains(b)), "B read A's data: {bits:?}"),
        Err(LlmError::Trap(why)) => assert!(why.contains("handle"), "{why}"),
        Err(other) => panic!("unexpected error: {other}"),
    }
    assert_serves(&mut b);
}

#[test]
fn a_spinning_guest_is_stopped_by_the_stall_deadline_and_the_next_request_works() {
    let mut llm = session();
    let start = Instant::now();
    match llm.tokenize("spin", false) {
        Err(LlmError::Trap(why)) => assert!(why.contains("without getting anything done"), "{why}"),
        other => panic!("expected the stall deadline to stop it, got {other:?}"),
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "stopped after {took:?} (the limit is 1 s)");
    assert_serves(&mut llm);
}

#[test]
fn a_guest_over_its_memory_cap_traps_and_the_next_request_works() {
    let mut llm = session();
    match llm.tokenize("hog", false) {
        Err(LlmError::Trap(_)) => {}
        other => panic!("expected a trap at the 64 MiB cap, got {other:?}"),
    }
    assert_serves(&mut llm);
}

#[test]
fn the_guest_cannot_reach_files_sockets_or_the_environment() {
    std::env::set_var("MURMUR_TEST_SECRET", "the host's environment");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("an address").port();
    let escape = Path::new("/tmp/murmur-escape");
    let _ = std::fs::remove_file(escape);

    let mut llm = session();
    let got = report(&mut llm, &format!("capabilities:{port}"));
    let outcome =
        |op: &str| got.iter().find(|(o, _)| o == op).map(|(_, r)| r.as_str()).unwrap_or_else(|| panic!("no {op}: {got:#?}"));
    assert_eq!(outcome("environment"), "0 variables");
    assert_eq!(outcome("arguments"), "0");
    assert_eq!(outcome("preopened directories"), "0");
    for op in ["std open /etc/passwd", "std list /", "std create /tmp/murmur-escape", "resolve localhost"] {
        assert_ne!(outcome(op), "ok", "{op}");
    }
    let connected = got.iter().any(|(op, r)| op.starts_with("tcp connect finished") && r == "ok")
        || got.iter().any(|(op, r)| op == "tcp connect" && r == "ok" && !got.iter().any(|(o, _)| o == "tcp connect finished"));
    assert!(!connected, "the guest connected: {got:#?}");
    assert!(got.iter().any(|(op, r)| op.starts_with("tcp") && r != "ok"), "{got:#?}");
    assert!(got.iter().any(|(op, r)| op.starts_with("udp") && r != "ok"), "{got:#?}");
    assert!(listener.accept().is_err(), "a connection reached the host's listener");
    assert!(!escape.exists(), "the guest wrote a host file");
}
