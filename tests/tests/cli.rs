//! The `murmur` CLI as a user runs it: answers from the real default model, everything else on
//! the quickest one.

use std::path::PathBuf;

use murmur_e2e::{murmur, QUICK_MODEL};

fn run(args: &[&str]) -> String {
    let out = murmur().args(args).output().expect("murmur runs");
    assert!(out.status.success(), "murmur {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn ask(question: &str) -> String {
    run(&["ask", "--temp", "0", question]).to_lowercase()
}

#[test]
fn answers_the_capital_of_france() {
    assert!(ask("What is the capital of France?").contains("paris"));
}

#[test]
fn answers_the_days_in_a_week() {
    let a = ask("How many days are in a week?");
    assert!(a.contains('7') || a.contains("seven"), "{a}");
}

#[test]
fn answers_the_opposite_of_hot() {
    assert!(ask("What is the opposite of hot?").contains("cold"));
}

#[test]
fn ask_json_reports_counts_and_speed() {
    let v: serde_json::Value =
        serde_json::from_str(&run(&["ask", "--temp", "0", "--json", "--max-tokens", "8", "Say hi."])).unwrap();
    assert!(v["prompt_tokens"].as_u64().unwrap() > 20);
    assert!(v["generated_tokens"].as_u64().unwrap() >= 1);
    assert!(v["time_to_first_token_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["backend"], "cpu");
}

/// Outside a desktop session (no runtime directory, no display), `ask` on `auto` prints the
/// answer and nothing else, ending its line: looking for a GPU stays quiet.
#[test]
fn ask_outside_a_desktop_session_prints_only_the_answer() {
    let out = murmur()
        .args(["ask", "--model", QUICK_MODEL, "--temp", "0", "--max-tokens", "4", "Say hi."])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("DISPLAY")
        .output()
        .expect("murmur runs");
    assert!(out.status.success());
    assert!(out.stdout.len() > 1 && out.stdout.ends_with(b"\n"), "{:?}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing but the answer");
}

/// `ask --json-schema FILE` answers with JSON that has the schema's fields and types; a schema
/// the grammar cannot take is refused by name.
#[test]
fn ask_with_a_json_schema_answers_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("city.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
            "required": ["city", "population"], "additionalProperties": false}"#,
    )
    .unwrap();
    let out = run(&[
        "ask",
        "--temp",
        "0",
        "--json-schema",
        schema.to_str().unwrap(),
        "What is the capital of France, and its population?",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(v["city"].as_str().unwrap().contains("Paris"), "{v}");
    assert!(v["population"].is_u64(), "{v}");

    std::fs::write(&schema, r#"{"type": "no-such-type"}"#).unwrap();
    let out = murmur().args(["ask", "--json-schema", schema.to_str().unwrap(), "Hi"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("JSON schema") && err.contains("no-such-type"), "{err}");
}

#[test]
fn the_gpu_backend_answers() {
    let out = run(&[
        "ask",
        "--model",
        QUICK_MODEL,
        "--backend",
        "gpu",
        "--temp",
        "0",
        "--json",
        "--max-tokens",
        "12",
        "What is the capital of France?",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["backend"], "gpu");
    assert!(v["answer"].as_str().unwrap().to_lowercase().contains("paris"), "{v}");
}

#[test]
fn gpu_bench_on_a_synthetic_model_counts_dispatches_and_submits() {
    let bench = |turn: &str| {
        let out = run(&[
            "bench",
            "--model",
            QUICK_MODEL,
            "--backend",
            "gpu",
            "--synthetic",
            "--json",
            "--prompt-tokens",
            "8",
            "--decode-tokens",
            "3",
            "--turn",
            turn,
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let run = v["runs"][0]["murmur"].clone();
        assert!(run["decode_tps"].as_f64().unwrap() > 0.0, "{v}");
        // A llama block in five dispatches (30 blocks, SmolLM2's shape).
        let dispatches = run["dispatches_per_token"].as_f64().unwrap();
        assert!((150.0..=220.0).contains(&dispatches), "{v}");
        (dispatches, run["submits_per_token"].as_f64().unwrap())
    };
    // By default a pass goes to the device in turns of 32 dispatches, the last with the read-back.
    let (dispatches, submits) = bench("32");
    assert_eq!(submits, (dispatches / 32.0).floor() + 1.0, "{dispatches} dispatches");
    // Without turns, one submit per token.
    assert_eq!(bench("0").1, 1.0);
}

#[test]
fn a_synthetic_model_needs_a_gguf_head() {
    let out = murmur().args(["bench", "--synthetic", "--model", "Cargo.toml"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a usable GGUF header"), "{err}");
}

#[test]
fn complete_json_gives_llama_cpp_tokens() {
    let out =
        run(&["complete", "--model", QUICK_MODEL, "--json", "--ignore-eos", "--max-tokens", "8", "The capital of France is"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["token_ids"], serde_json::json!([7042, 30, 198, 198, 504, 1797, 1918, 553]));
}

#[test]
fn tokenize_parses_special_tokens() {
    let out = run(&["tokenize", "--model", QUICK_MODEL, "<|im_start|>user\nHi<|im_end|>"]);
    let ids: Vec<u32> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
}

#[test]
fn models_list_shows_the_catalog_installed_and_verified() {
    let out = run(&["models", "list"]);
    for file in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "whisper-tiny.en-ct2/model.bin",
        "whisper-base-ct2/model.bin",
        "piper/en_US-joe-medium.onnx",
        "onnxruntime/libonnxruntime.so.1.31.1",
    ] {
        assert!(out.contains(file), "{file}: {out}");
    }
    assert!(out.contains("qwen2 Q4_K_M, 1117 MB") && out.contains("the default chat model"), "{out}");
    assert!(!out.contains("not installed") && !out.contains("UNVERIFIED"), "{out}");
    // Every file of the catalog: four chat models, two speech models, the voice and its runtime.
    let files: usize = murmur_core::models::Manifest::builtin().models.iter().map(|m| m.files.len()).sum();
    assert_eq!((out.matches("installed, verified").count(), files), (15, 15), "{out}");
    assert!(out.contains("speech base (ggml)") && !out.contains("missing (run"), "{out}");
}

/// A typed chat with the largest catalog model answers, and its peak resident memory stays
/// within the model file's size plus 200 MB (the kernels hold one packed copy of the weights).
#[test]
fn the_largest_catalog_model_answers_a_typed_chat_within_its_file_size_plus_200_mb() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    // `--model` takes a catalog id as well as a file. `wait4` below reaps the child, and gives
    // its peak memory.
    #[allow(clippy::zombie_processes)]
    let mut child = murmur()
        .args(["chat", "--temp", "0", "--backend", "cpu", "--model", "qwen2.5-coder-1.5b"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("murmur runs");
    child.stdin.take().unwrap().write_all(b"What is the capital of France?\nAnd the capital of Italy?\n").unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child, which nothing else reaps; both pointers are valid.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "murmur chat failed: {err}");
    assert!(out.contains("Paris") && out.contains("Rome"), "{out}");
    let file = std::fs::metadata(murmur_core::models::llm_named("qwen2.5-coder-1.5b")).expect("the model is installed").len();
    let peak = usage.ru_maxrss as u64 * 1024;
    eprintln!("peak RSS {:.0} MB for a {:.0} MB file", peak as f64 / 1e6, file as f64 / 1e6);
    assert!(peak <= file + 200_000_000, "peak RSS {peak} bytes, file {file} bytes");
}

#[test]
fn help_lists_every_subcommand() {
    let out = run(&["--help"]);
    for cmd in ["models", "ask", "complete", "tokenize", "bench", "transcribe", "listen", "say", "voices", "voice"] {
        assert!(out.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn a_missing_model_is_a_clear_error() {
    let out = murmur().args(["ask", "--model", "/nonexistent/model.gguf", "hi"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model.gguf") && err.contains("murmur models fetch"), "{err}");
}

fn shared_audio(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio").join(name).to_str().unwrap().to_string()
}

/// `murmur voice --in FILE --speak-to FILE --json`: the spoken question is answered, the answer
/// is spoken into the WAV (Whisper hears it there), and the timeline has every stage in order,
/// the first audio before the reply's end (its first words are spoken while it is generated).
#[test]
fn voice_turn_answers_a_spoken_question_into_a_wav() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("answer.wav");
    let out = run(&["voice", "--in", &shared_audio("question-france.wav"), "--speak-to", wav.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(v["transcript"].as_str().unwrap().to_lowercase().contains("capital"), "{v}");
    assert!(v["answer"].as_str().unwrap().contains("Paris"), "{v}");
    let t = &v["timeline"];
    let stages = ["transcript_ms", "first_token_ms", "first_sentence_ms", "first_audio_ms", "last_audio_ms"];
    let marks: Vec<f64> = stages.iter().map(|k| t[k].as_f64().unwrap_or_else(|| panic!("{k} in {t}"))).collect();
    assert!(marks.windows(2).all(|w| w[0] <= w[1]), "{t}");
    let (audio, reply) = (t["first_audio_ms"].as_f64().unwrap(), t["reply_ms"].as_f64().unwrap());
    assert!(audio < reply, "the first audio came after the reply's end: {t}");
    assert!(t["audio_seconds"].as_f64().unwrap() > 1.0, "{t}");
    let heard = run(&["transcribe", wav.to_str().unwrap()]);
    assert!(heard.contains("Paris"), "the WAV says {heard:?}");
}

/// With no output device (the audio server unreachable), the answer is still given, with one
/// clear note that it is not spoken.
#[test]
fn voice_without_an_output_device_still_answers() {
    let out = murmur()
        .args(["voice", "--in", &shared_audio("question-france.wav"), "--json"])
        .env("PULSE_SERVER", "unix:/nonexistent/murmur-test")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("replies are shown but not spoken").count(), 1, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v["answer"].as_str().unwrap().contains("Paris"), "{v}");
    assert!(v["timeline"]["first_audio_ms"].is_null(), "{v}");
}

/// `murmur say --speak-to` writes speech that Whisper understands.
#[test]
fn say_speaks_into_a_wav() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("say.wav");
    run(&["say", "Please turn off the lights in the kitchen.", "--speak-to", wav.to_str().unwrap()]);
    let heard = run(&["transcribe", wav.to_str().unwrap()]).to_lowercase();
    assert!(heard.contains("lights") && heard.contains("kitchen"), "{heard:?}");
}

/// `murmur voices` lists the catalog's Piper voice first, installed, then espeak-ng's; a voice
/// that is not there is refused by name, pointing at that list.
#[test]
fn voices_lists_piper_then_espeak() {
    let v: serde_json::Value = serde_json::from_str(&run(&["voices", "--json"])).unwrap();
    assert_eq!(v[0]["id"], "piper:joe", "{v}");
    assert_eq!(v[0]["installed"], true, "{v}");
    assert!(v.as_array().unwrap().iter().any(|v| v["id"] == "espeak:en-us"), "{v}");
    for (voice, name) in [("espeak:zz", "'zz'"), ("piper:nobody", "'nobody'")] {
        let out = murmur().args(["say", "--voice", voice, "Hello."]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(name) && err.contains("`murmur voices` lists the voices"), "{err}");
    }
}

/// A Piper voice whose files, or whose runtime library, are missing gives way to espeak-ng with
/// one notice naming what is missing, and the speech is still said.
#[test]
fn a_missing_piper_voice_or_runtime_falls_back_to_espeak() {
    let installed = murmur_core::paths::models_dir().join("piper");
    let (empty, no_runtime) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(no_runtime.path().join("piper")).unwrap();
    for file in ["en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"] {
        std::os::unix::fs::symlink(installed.join(file), no_runtime.path().join("piper").join(file)).unwrap();
    }
    for (models, missing) in [(empty.path(), "en_US-joe-medium.onnx"), (no_runtime.path(), "libonnxruntime.so")] {
        let wav = models.join("say.wav");
        let out = murmur()
            .args(["say", "--speak-to", wav.to_str().unwrap(), "Turn off the lights in the kitchen."])
            .env("MURMUR_MODELS_DIR", models)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(err.matches("speaking with espeak-ng instead").count(), 1, "{err}");
        assert!(err.contains(missing), "{err}");
        let heard = run(&["transcribe", wav.to_str().unwrap()]).to_lowercase();
        assert!(heard.contains("kitchen"), "{heard:?}");
    }
}

/// A voice turn on a microphone that hears only silence (the test audio server's null source)
/// ends with one clear message instead of an invented question.
#[test]
fn voice_from_a_silent_microphone_says_so() {
    let out = murmur().args(["voice", "--mic", "--seconds", "1", "--silent"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no speech was heard"), "{err}");
}

/// `murmur transcribe --json` prints the words and where the time went; a WAV that is not
/// audio gets a one-line error naming the file.
#[test]
fn transcribes_a_wav_file_with_timings() {
    let jfk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/jfk.wav");
    let out: serde_json::Value = serde_json::from_str(&run(&["transcribe", "--json", jfk.to_str().unwrap()])).expect("JSON");
    let words = out["text"].as_str().unwrap().replace(',', "");
    assert!(words.contains("ask not what your country can do for you"), "{out}");
    for key in ["load_ms", "mel_ms", "encode_ms", "decode_ms"] {
        assert!(out[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {out}");
    }
    assert_eq!(out["audio_s"].as_f64(), Some(11.0));
    let bad = murmur().args(["transcribe", "Cargo.toml"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("Cargo.toml: not a readable WAV file"), "{err}");
}
