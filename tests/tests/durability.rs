//! kill -9 during streaming replies, over and over: the chat history always opens, passes
//! SQLite's integrity check, and holds every exchange that had completed before each kill.
//!
//! `murmur chat --history` saves exchanges exactly as the app does (`core::history`, one
//! transaction per exchange, WAL, synchronous=FULL), so a killed CLI is a killed app as far
//! as the database is concerned, without a window's start-up cost per kill.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use murmur_e2e::{murmur, QUICK_MODEL};

/// How many times the process is killed.
const KILLS: usize = 100;

fn chat(db: &Path) -> Child {
    murmur()
        .args(["chat", "--model", QUICK_MODEL, "--json", "--temp", "0", "--max-tokens", "24", "--backend", "cpu", "--history"])
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("murmur chat starts")
}

/// The (question, answer) pairs stored in the history, after checking the database's integrity.
fn stored(db: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).expect("the history opens");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check runs");
    assert_eq!(check, "ok", "the history is damaged");
    let mut stmt = conn
        .prepare(
            "SELECT q.content, a.content FROM messages q JOIN messages a
             ON a.conversation_id = q.conversation_id AND a.id = q.id + 1
             WHERE q.role = 'user' AND a.role = 'assistant'",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn killing_mid_reply_never_loses_a_completed_exchange_nor_damages_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let mut completed: Vec<(String, String)> = Vec::new();
    let mut killed_mid_reply = 0;
    let start = Instant::now();
    for run in 0..KILLS {
        let mut child = chat(&db);
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Complete 0–2 exchanges, then kill the next reply after 1–5 streamed tokens (every
        // fourth run: after a few milliseconds instead, wherever that lands, commits included).
        let finish = run % 3;
        let tokens_before_kill = 1 + run % 5;
        for n in 0..=finish {
            writeln!(stdin, "Run {run}, question {n}: name a fruit and its colour.").unwrap();
        }
        stdin.flush().unwrap();
        let (mut done, mut tokens) = (0, 0);
        for line in lines.by_ref() {
            let line = line.expect("murmur's output");
            let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            if let Some(answer) = event.get("answer") {
                completed.push((event["question"].as_str().unwrap().into(), answer.as_str().unwrap().into()));
                done += 1;
                continue;
            }
            if done < finish {
                continue;
            }
            tokens += 1;
            if run % 4 == 3 {
                std::thread::sleep(Duration::from_millis((run as u64 * 7) % 40));
                break;
            }
            if tokens == tokens_before_kill {
                killed_mid_reply += 1;
                break;
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let in_db = stored(&db);
        for exchange in &completed {
            assert!(in_db.contains(exchange), "run {run}: a completed exchange is missing: {exchange:?}");
        }
    }
    let in_db = stored(&db);
    eprintln!(
        "{KILLS} kills in {:.0?}: {killed_mid_reply} at a known token of a reply; {} exchanges completed, {} stored",
        start.elapsed(),
        completed.len(),
        in_db.len()
    );
    assert!(killed_mid_reply >= KILLS / 2);
    assert!(completed.len() >= KILLS / 2);
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(bytes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "murmur-test", dir.path().to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a small tmpfs needs root or CAP_SYS_ADMIN (CI runs as root)");
        Self(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_loses_only_the_exchanges_it_could_not_hold() {
    let disk = SmallDisk::mount(512 << 10);
    let db = disk.0.path().join("history.sqlite");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = murmur()
        .args(["chat", "--model", QUICK_MODEL, "--json", "--temp", "0", "--max-tokens", "48", "--backend", "cpu", "--history"])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ask = |n: usize| -> Option<i64> {
        writeln!(stdin, "Question {n}: describe the sea in one long sentence.").unwrap();
        stdin.flush().unwrap();
        for line in lines.by_ref() {
            let event: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            if event.get("answer").is_some() {
                return event["conversation"].as_i64();
            }
        }
        panic!("murmur chat ended");
    };
    assert!(ask(0).is_some(), "the first exchange is saved");
    // Fill the disk to the last byte.
    let filler = disk.0.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 4096]).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    drop(f);
    let mut saved = vec![0];
    let mut refused = Vec::new();
    for n in 1..=12 {
        match ask(n) {
            Some(_) => saved.push(n),
            None => refused.push(n),
        }
    }
    assert!(!refused.is_empty(), "nothing was refused on a full disk");
    let notes = std::fs::read_to_string(log.path()).unwrap();
    assert!(notes.contains("is full"), "no clear error: {notes}");
    // Space comes back: saving resumes, in the same process.
    std::fs::remove_file(&filler).unwrap();
    assert!(ask(13).is_some(), "saving did not resume once space was freed");
    saved.push(13);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let questions: Vec<String> = stored(&db).into_iter().map(|(q, _)| q).collect();
    for n in saved {
        assert!(questions.iter().any(|q| q.starts_with(&format!("Question {n}:"))), "saved exchange {n} is missing");
    }
    eprintln!("on a full disk: {} exchanges refused, {} saved, history intact", refused.len(), questions.len());
}
