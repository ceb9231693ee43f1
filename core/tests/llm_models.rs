//! The models users download, in the real guest on the CPU backend, against llama.cpp's own
//! answers (made by the test setup with `tests/reference/llama_reference.py`): the catalog's Qwen2.5
//! files (K-quants, qwen2), llama.cpp's quantised variants of SmolLM2, one per weight type, and
//! a Llama 3-shaped model with random weights and its K-quant variants. And the catalog's
//! choice of default: the smallest model that answers the reference questions.

mod common;

use murmur_core::assistant::DEFAULT_SYSTEM;
use murmur_core::llm::{Llm, LlmConfig, Message, Sampling};
use murmur_core::models::{Manifest, Role};

fn load(path: std::path::PathBuf) -> Llm {
    Llm::load(LlmConfig::new(path.clone())).unwrap_or_else(|e| panic!("{} loads: {e}", path.display()))
}

/// Each real model: its qwen2 tokenizer on mixed text, 16 greedy tokens of three prompts, and
/// the reference question answered.
#[test]
fn qwen2_5_models_match_llama_cpp_and_answer() {
    for (id, file) in [
        ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m"),
        ("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m"),
    ] {
        let mut llm = load(common::catalog_model(id));
        let reference = common::reference_for(file);
        common::check_tokenizer(&mut llm, &reference);
        common::check_greedy(&mut llm, &reference, 16, id);
        let question = [
            Message { role: "system".into(), content: DEFAULT_SYSTEM.into() },
            Message { role: "user".into(), content: "What is the capital of France?".into() },
        ];
        let (g, _) = llm.chat(&question, &Sampling::greedy(24), |_| true).expect("answers");
        assert!(g.text.contains("Paris"), "{id} answered {:?}", g.text);
    }
}

/// Gemma 3 270M, the real file (gemma3: 256-wide heads normed per head, GELU, norms after each
/// block, sliding-window layers with their own rope base, a 262,144-token SentencePiece
/// vocabulary without a space prefix): its tokenizer on mixed text (leading spaces, tabs,
/// newlines, digits, CJK, emoji, bytes no token covers, special tokens), 16 greedy tokens of
/// three raw prompts, and a chat turn in Gemma's own turn markers.
#[test]
fn gemma3_matches_llama_cpp() {
    let mut llm = load(common::catalog_model("gemma3-270m"));
    let reference = common::reference_for("gemma-3-270m-q4_k_m");
    common::check_tokenizer(&mut llm, &reference);
    common::check_greedy(&mut llm, &reference, 16, "gemma3-270m");
    // The file has no template; Gemma's turns are used, and the reply ends at its turn's end.
    let question = [Message { role: "user".into(), content: "What is the capital of France?".into() }];
    let (g, _) = llm.chat(&question, &Sampling::greedy(24), |_| true).expect("answers");
    assert!(!g.text.contains("<start_of_turn>") && !g.text.contains("<end_of_turn>"), "{:?}", g.text);
}

/// SmolLM2 requantised by llama.cpp to each weight type: 32 greedy tokens of three prompts. SmolLM2's width (576) is not a multiple of 256, so llama.cpp keeps most tensors of
/// a K-quant variant in Q5_0/Q8_0 and the rest in the K type.
#[test]
fn quantised_variants_of_smollm2_match_llama_cpp() {
    let dir = murmur_core::paths::cache_dir().join("variants");
    for ty in ["Q4_0", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"] {
        let stem = format!("SmolLM2-135M-Instruct.{ty}");
        let path = dir.join(format!("{stem}.gguf"));
        assert!(path.exists(), "{} is missing (made by `./dev test`'s setup)", path.display());
        let mut llm = load(path);
        common::check_greedy(&mut llm, &common::reference_for(&stem), 32, &stem);
    }
}

/// A Llama 3-shaped model with random weights (`llama_reference.py synthetic`): every width a
/// multiple of 256, so each tensor of a K-quant variant is in a K type (or IQ4_XS), and the
/// rotation's frequencies divided by its `rope_freqs`. Its F16 source and four variants that
/// hold Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS between them, 32 greedy tokens of three
/// prompts each.
#[test]
fn a_synthetic_llama3_and_its_k_quant_variants_match_llama_cpp() {
    for ty in ["F16", "Q2_K", "Q3_K_M", "Q4_K_M", "IQ4_XS"] {
        let (path, stem) = common::synthetic("llama3", ty);
        let mut llm = load(path);
        common::check_greedy(&mut llm, &common::reference_for(&stem), 32, &stem);
    }
}

/// Qwen3, Phi-3 and Gemma 3 with random weights (`llama_reference.py synthetic`), in F16: heads
/// wider than the width over the heads, normed per head (Qwen3, Gemma 3); q/k/v in one tensor
/// and the gate with the up projection (Phi-3); Gemma 3's window of 5 positions sliding on two
/// layers of every three, well inside the prompts. 32 greedy tokens of three prompts each, and
/// while Murmur's path is llama.cpp's, llama.cpp's five best logits within 1e-2.
#[test]
fn synthetic_qwen3_phi3_and_gemma3_match_llama_cpp() {
    for family in ["qwen3", "phi3", "gemma3"] {
        let (path, stem) = common::synthetic(family, "F16");
        common::check_greedy_and_logits(path, &common::reference_for(&stem), 32, &stem, 1e-2);
    }
}

/// A split GGUF (the synthetic Llama 3 in three files, as llama.cpp's gguf-split writes them):
/// opened by its first file, it continues the prompts as llama.cpp does (and as the whole file
/// does), its five best logits within 1e-2 of llama.cpp's; a missing file is named, and a file
/// in another's place is refused.
#[test]
fn a_split_model_matches_llama_cpp_and_its_missing_file_is_named() {
    let (path, stem) = common::split_llama3();
    common::check_greedy_and_logits(path.clone(), &common::reference_for(&stem), 32, &stem, 1e-2);
    let dir = tempfile::tempdir().unwrap();
    let file = |k: u32| format!("llama3-synthetic.F16-split-0000{k}-of-00003.gguf");
    for k in [1, 3] {
        std::fs::copy(path.with_file_name(file(k)), dir.path().join(file(k))).unwrap();
    }
    let err = Llm::load(LlmConfig::new(dir.path().join(file(1)))).err().expect("refused").to_string();
    assert!(
        err.contains("split into 3 files") && err.contains(&format!("part 2, {}", dir.path().join(file(2)).display())),
        "{err}"
    );
    // The second file in the third's place: the files are not the ones the first names.
    std::fs::copy(path.with_file_name(file(2)), dir.path().join(file(2))).unwrap();
    std::fs::copy(path.with_file_name(file(2)), dir.path().join(file(3))).unwrap();
    let err = Llm::load(LlmConfig::new(dir.path().join(file(1)))).err().expect("refused").to_string();
    assert!(err.contains("file 3 of the split model is not its part 3 of 3"), "{err}");
}

/// A model of an architecture Murmur does not run is refused by name when it loads: the
/// synthetic Llama 3 with its architecture renamed `gemma` (the same length, so nothing moves).
#[test]
fn an_unsupported_architecture_is_refused_by_name() {
    let (path, _) = common::synthetic("llama3", "F16");
    let mut bytes = std::fs::read(&path).unwrap();
    let key = b"general.architecture";
    // The key, its value's type (u32), the string's length (u64), then the string.
    let at = bytes.windows(key.len()).position(|w| w == key).expect("the key") + key.len() + 12;
    assert_eq!(&bytes[at..at + 5], b"llama");
    bytes[at..at + 5].copy_from_slice(b"gemma");
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("renamed.gguf");
    std::fs::write(&renamed, bytes).unwrap();
    let err = Llm::load(LlmConfig::new(renamed)).err().expect("refused").to_string();
    assert!(err.contains("architecture 'gemma'") && err.contains("qwen2"), "{err}");
}

/// A SentencePiece vocabulary with the space prefix that Llama 2's adds (a tiny llama with
/// Gemma's vocabulary told to add it): token-exact with llama.cpp on the mixed texts (the prefix
/// goes before the text and after each special token), and the prompts continued as llama.cpp
/// continues them.
#[test]
fn sentencepiece_with_a_space_prefix_matches_llama_cpp() {
    let (path, stem) = common::synthetic("llama-spm", "F16");
    let mut llm = load(path);
    let reference = common::reference_for(&stem);
    common::check_tokenizer(&mut llm, &reference);
    common::check_greedy(&mut llm, &reference, 32, &stem);
}

/// Phi-3's long-context models (LongRoPE: their `rope_factors_long`/`_short` tensors) are
/// refused by name: the synthetic Phi-3 with a tensor renamed so (the same length, so nothing
/// moves).
#[test]
fn longrope_is_refused_by_name() {
    let (path, _) = common::synthetic("phi3", "F16");
    let mut bytes = std::fs::read(&path).unwrap();
    let (name, long) = (b"blk.0.attn_output.weight", b"rope_factors_long.weight");
    let at = bytes.windows(name.len()).position(|w| w == name).expect("the tensor's name");
    bytes[at..at + long.len()].copy_from_slice(long);
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("longrope.gguf");
    std::fs::write(&renamed, bytes).unwrap();
    let err = Llm::load(LlmConfig::new(renamed)).err().expect("refused").to_string();
    assert!(err.contains("'longrope' rope scaling"), "{err}");
}

/// The reference questions, and the words of which a right answer holds one.
const QUESTIONS: [(&str, &[&str]); 5] = [
    ("What is the capital of France?", &["paris"]),
    ("How many planets are in our solar system?", &["8", "eight"]),
    ("What is 12 times 12?", &["144"]),
    ("Who wrote Romeo and Juliet?", &["shakespeare"]),
    ("At what temperature in degrees Celsius does water boil at sea level?", &["100"]),
];

/// The reference questions asked of every catalog chat model up to the default's size, each
/// greedily with the default system prompt: the default answers them all, and every smaller
/// model misses at least one (else it should be the default).
#[test]
fn the_default_is_the_smallest_model_that_answers_the_reference_questions() {
    let manifest = Manifest::builtin();
    let default = manifest.default_llm();
    let mut candidates: Vec<_> =
        manifest.models.iter().filter(|m| m.role == Role::Llm && m.files[0].size <= default.files[0].size).collect();
    candidates.sort_by_key(|m| m.files[0].size);
    for model in candidates {
        let mut llm = load(common::catalog_model(&model.id));
        let mut wrong = Vec::new();
        for (question, right) in QUESTIONS {
            let chat = [
                Message { role: "system".into(), content: DEFAULT_SYSTEM.into() },
                Message { role: "user".into(), content: question.into() },
            ];
            let (g, _) = llm.chat(&chat, &Sampling::greedy(48), |_| true).expect("answers");
            let answer = g.text.to_lowercase();
            let holds = answer.split(|c: char| !c.is_alphanumeric()).any(|w| right.contains(&w));
            eprintln!("{}: {question} → {:?} ({})", model.id, g.text, if holds { "right" } else { "wrong" });
            if !holds {
                wrong.push(format!("{question} → {:?}", g.text));
            }
        }
        if model.id == default.id {
            assert!(wrong.is_empty(), "the default, {}, answered wrongly: {wrong:?}", model.id);
        } else {
            assert!(!wrong.is_empty(), "{} is smaller than the default and answers every reference question", model.id);
        }
    }
}
