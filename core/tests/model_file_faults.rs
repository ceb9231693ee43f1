//! The model file misbehaving under a loaded model: truncated, overwritten or deleted while
//! Murmur runs (its weights are read and packed at load, so none of this reaches it, and no
//! read can fault the way a shrunken file mapping does), and rewritten while it is being read
//! (refused).

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use murmur_core::llm::{BackendChoice, Llm, LlmConfig, LlmError, Message, Sampling};

fn ask(llm: &mut Llm) -> String {
    let question = [Message { role: "user".into(), content: "What is the capital of France?".into() }];
    llm.chat(&question, &Sampling::greedy(12), |_| true).expect("the reply works").0.text
}

/// SmolLM2's answer, from an untouched file.
fn reference_answer() -> String {
    ask(&mut Llm::load(cpu(&common::model_path())).unwrap())
}

fn cpu(path: &std::path::Path) -> LlmConfig {
    let mut cfg = LlmConfig::new(path);
    cfg.backend = BackendChoice::Cpu;
    cfg
}

#[test]
fn a_loaded_model_survives_its_file_being_truncated_overwritten_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::copy(common::model_path(), &path).unwrap();
    let mut llm = Llm::load(cpu(&path)).unwrap();
    let before = ask(&mut llm);
    assert_eq!(before, reference_answer());

    // Truncated in place (the same inode a mapping would see).
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(4096).unwrap();
    assert_eq!(ask(&mut llm), before);
    // A trapped guest restarts from the model in memory, not from the file.
    let canceller = llm.canceller();
    let s = Sampling { ignore_eos: true, ..Sampling::greedy(50) };
    let err = llm
        .complete("Once upon a time", &s, move |_| {
            canceller.interrupt();
            true
        })
        .unwrap_err();
    assert!(matches!(err, LlmError::Trap(_)), "{err}");
    assert_eq!(ask(&mut llm), before);

    // Overwritten with other bytes, then deleted.
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&vec![0xA5; 1 << 20]).unwrap();
    drop(f);
    assert_eq!(ask(&mut llm), before);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(ask(&mut llm), before);

    // Loading what is left gets a clear error.
    let err = Llm::load(cpu(&path)).err().expect("a deleted file does not load");
    assert!(err.to_string().contains("cannot open the model file"), "{err}");
}

#[test]
fn a_model_file_rewritten_while_it_loads_is_refused_or_loads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    let bytes = std::fs::read(common::model_path()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    // A writer that keeps rewriting the file as a download would: shorter, then whole again.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path, bytes) = (Arc::clone(&stop), path.clone(), bytes.clone());
        std::thread::spawn(move || {
            let mut rewrites = 0;
            while !stop.load(Ordering::SeqCst) {
                let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.set_len(bytes.len() as u64 / 3).unwrap();
                f.write_all(&bytes).unwrap();
                rewrites += 1;
            }
            rewrites
        })
    };
    let whole = format!("loaded: {}", reference_answer());
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(match Llm::load(cpu(&path)) {
            Ok(mut llm) => format!("loaded: {}", ask(&mut llm)),
            Err(e) => e.to_string(),
        });
    }
    stop.store(true, Ordering::SeqCst);
    let rewrites = writer.join().unwrap();
    assert!(rewrites > 0);
    for o in &outcomes {
        let clear = *o == whole || o.contains("changed while it was being read") || o.contains("truncated");
        assert!(clear, "unexpected outcome: {o}");
    }
    eprintln!("{rewrites} rewrites; outcomes: {outcomes:#?}");
}
