//! 1,000 typed questions in a row through one `murmur chat` process, each in a new
//! conversation saved to the history, with the process's resident memory sampled after every
//! reply: after warm-up the curve must be flat (no memory kept per turn).

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Instant;

use murmur_e2e::{murmur, QUICK_MODEL};

const TURNS: usize = 1_000;
/// Turns before the curve is judged (caches, allocator arenas and SQLite's page cache fill).
const WARM_UP: usize = 200;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is readable");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number")
}

/// Least-squares slope of `ys` over their indices.
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in ys.iter().enumerate() {
        num += (x as f64 - mx) * (y - my);
        den += (x as f64 - mx).powi(2);
    }
    num / den
}

#[test]
fn a_thousand_questions_leave_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = murmur()
        .args(["chat", "--model", QUICK_MODEL, "--json", "--temp", "0", "--max-tokens", "16", "--backend", "cpu", "--history"])
        .arg(dir.path().join("history.sqlite"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("murmur chat starts");
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let subjects = ["a fruit", "a colour", "a planet", "an animal", "a country", "a river", "a tree"];
        for turn in 0..TURNS {
            writeln!(stdin, "/new\nQuestion {turn}: name {}.", subjects[turn % subjects.len()]).unwrap();
        }
    });
    let start = Instant::now();
    let mut rss = Vec::with_capacity(TURNS);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line: serde_json::Value = serde_json::from_str(&line.expect("murmur's output")).expect("a JSON line");
        if line.get("answer").is_some() {
            rss.push(rss_kib(pid));
        }
    }
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rss.len(), TURNS, "every question was answered");

    let mib = |k: u64| k as f64 / 1024.0;
    let settled: Vec<f64> = rss[WARM_UP..].iter().map(|&k| k as f64).collect();
    let kib_per_turn = slope(&settled);
    let curve: Vec<String> = (0..=10).map(|i| format!("{:.1}", mib(rss[(i * (TURNS - 1)) / 10]))).collect();
    std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/soak-rss.csv"),
        rss.iter().enumerate().map(|(t, k)| format!("{t},{k}\n")).collect::<String>(),
    )
    .unwrap();
    eprintln!(
        "{TURNS} turns in {:.0?}; RSS MiB at each tenth: [{}]; slope after turn {WARM_UP}: {kib_per_turn:.3} KiB/turn",
        start.elapsed(),
        curve.join(", ")
    );
    // A leak of even one kilobyte per turn would show as ~0.8 MiB over the judged turns.
    assert!(kib_per_turn < 1.0, "resident memory grows {kib_per_turn:.2} KiB per turn");
    let (low, high) = settled.iter().fold((f64::MAX, 0f64), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(high - low < 8.0 * 1024.0, "RSS wandered {:.1} MiB after warm-up", (high - low) / 1024.0);
}
