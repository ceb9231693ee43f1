//! Piper neural voices: VITS models exported to ONNX, fed espeak-ng phonemes the way Piper makes
//! them, and run by ONNX Runtime (the library fetched with the voice, loaded at run time).
//!
//! Text becomes speech one sentence at a time. Each sentence is cut into clauses at `, ; : . ? !`;
//! each clause gets espeak-ng's IPA phonemes, then its closing punctuation (and a space after a
//! comma, colon or semicolon), all decomposed (NFD). The ids are `^ _ (phoneme _)* $`. The model
//! returns the sentence's audio, which is peak-normalised as Piper does.

use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::{check_rate, espeak, Synthesizer, TtsError, DEFAULT_RATE};
use crate::models::{self, Manifest, ModelEntry, Role};

/// The name of catalog voice `entry` (`joe`): its id `piper-NAME` without the prefix.
pub(super) fn piper_name(entry: &ModelEntry) -> Option<&str> {
    entry.id.strip_prefix("piper-").filter(|_| entry.role == Role::Voice)
}

/// The files a Piper voice needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiperFiles {
    /// The ONNX model.
    pub model: PathBuf,
    /// Its `.onnx.json`: sample rate, espeak voice, phoneme ids.
    pub config: PathBuf,
    /// ONNX Runtime's shared library.
    pub runtime: PathBuf,
    /// The catalog model that installs them (`piper-joe`).
    pub id: String,
}

impl PiperFiles {
    /// Where catalog voice `name` (`joe`: the model `piper-joe`) is installed under the models
    /// directory, whether or not it has been fetched; `None` if the catalog has no such voice.
    pub fn catalog(name: &str) -> Option<Self> {
        let manifest = Manifest::builtin();
        let entry = manifest.with_role(Role::Voice).find(|m| piper_name(m) == Some(name))?;
        Self::of(entry)
    }

    /// Where the files of catalog voice `entry` are installed; `None` if it is not a Piper voice.
    pub fn of(entry: &ModelEntry) -> Option<Self> {
        piper_name(entry)?;
        let dir = crate::paths::models_dir();
        let file = |test: &dyn Fn(&str) -> bool| entry.files.iter().find(|f| test(&f.file)).map(|f| models::file_path(&dir, f));
        Some(Self {
            model: file(&|f| f.ends_with(".onnx"))?,
            config: file(&|f| f.ends_with(".onnx.json"))?,
            runtime: file(&|f| f.starts_with("onnxruntime/"))?,
            id: entry.id.clone(),
        })
    }
}

/// How a Piper voice speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PiperOptions {
    /// Words per minute; the voice's own pace is [`DEFAULT_RATE`].
    pub rate: u32,
    /// Threads ONNX Runtime may use for one sentence.
    pub threads: usize,
    /// No sampling noise: the same text always gives the same samples (for tests).
    pub deterministic: bool,
}

impl Default for PiperOptions {
    fn default() -> Self {
        Self { rate: DEFAULT_RATE, threads: 1, deterministic: false }
    }
}

/// The parts of a voice's `.onnx.json` that synthesis reads.
#[derive(Debug, Deserialize)]
struct VoiceFile {
    audio: AudioConfig,
    espeak: EspeakConfig,
    inference: InferenceConfig,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Debug, Deserialize)]
struct AudioConfig {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct EspeakConfig {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct InferenceConfig {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

/// Piper's marks around and between phonemes.
const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

/// A loaded Piper voice, warmed up and ready to speak.
pub struct Piper {
    session: Session,
    ids: HashMap<char, Vec<i64>>,
    espeak_voice: CString,
    sample_rate: u32,
    /// `[noise_scale, length_scale, noise_w]`, the model's `scales` input.
    scales: [f32; 3],
}

/// The process's ONNX Runtime, loaded from the first library asked for.
fn runtime(files: &PiperFiles) -> Result<&'static Environment, TtsError> {
    static RUNTIME: OnceLock<Result<Environment, String>> = OnceLock::new();
    let library = &files.runtime;
    if !library.exists() {
        return Err(TtsError::NotInstalled { what: "ONNX Runtime", path: library.clone(), model: files.id.clone() });
    }
    RUNTIME
        .get_or_init(|| {
            let env = ort::init_from(library).map_err(|e| format!("cannot load ONNX Runtime: {e}"))?;
            env.with_name("murmur").with_telemetry(false).build().map_err(|e| format!("ONNX Runtime did not start: {e}"))
        })
        .as_ref()
        .map_err(|e| TtsError::Engine(e.clone()))
}

impl Piper {
    /// Loads the voice in `files` and speaks one word with it, so that the first real sentence
    /// pays no start-up cost.
    pub fn load(files: &PiperFiles, options: PiperOptions) -> Result<Self, TtsError> {
        check_rate(options.rate)?;
        let missing =
            |p: &Path| TtsError::NotInstalled { what: "the Piper voice", path: p.to_path_buf(), model: files.id.clone() };
        let text = std::fs::read_to_string(&files.config).map_err(|_| missing(&files.config))?;
        if !files.model.exists() {
            return Err(missing(&files.model));
        }
        let bad = |why: String| TtsError::Engine(format!("{} is not a Piper voice: {why}", files.config.display()));
        let voice: VoiceFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut ids = HashMap::new();
        for (phoneme, id) in voice.phoneme_id_map {
            let mut chars = phoneme.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => ids.insert(c, id),
                _ => return Err(bad(format!("the phoneme {phoneme:?} is not one character"))),
            };
        }
        if let Some(mark) = [BOS, EOS, PAD].into_iter().find(|c| !ids.contains_key(c)) {
            return Err(bad(format!("it has no id for '{mark}'")));
        }
        let start = std::time::Instant::now();
        let env = runtime(files)?;
        let engine = |e: ort::Error| TtsError::Engine(format!("ONNX Runtime cannot load {}: {e}", files.model.display()));
        let builder = |e: ort::Error<_>| engine(e.into());
        let session = Session::builder(env)
            .map_err(engine)?
            .with_intra_threads(options.threads.max(1))
            .map_err(builder)?
            .with_inter_threads(1)
            .map_err(builder)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(builder)?
            .commit_from_file(&files.model)
            .map_err(engine)?;
        let i = &voice.inference;
        let (noise, noise_w) = if options.deterministic { (0.0, 0.0) } else { (i.noise_scale, i.noise_w) };
        let length = i.length_scale * DEFAULT_RATE as f32 / options.rate as f32;
        let espeak_voice = CString::new(voice.espeak.voice).map_err(|_| bad("a NUL in the espeak voice".into()))?;
        let mut piper =
            Self { session, ids, espeak_voice, sample_rate: voice.audio.sample_rate, scales: [noise, length, noise_w] };
        let loaded = start.elapsed();
        piper.synthesize_all("Hello.")?;
        tracing::info!(load_ms = loaded.as_millis(), warm_ms = (start.elapsed() - loaded).as_millis(), "Piper voice ready");
        Ok(piper)
    }

    /// The phoneme ids of one sentence: `^ _ (phoneme _)* $`, skipping phonemes the voice lacks.
    fn ids(&self, sentence: &[(&str, Option<char>)]) -> Result<Vec<i64>, TtsError> {
        let words: Vec<&str> = sentence.iter().map(|(words, _)| *words).collect();
        let mut phonemes = String::new();
        for (clause, (_, mark)) in espeak::phonemes(&self.espeak_voice, &words)?.into_iter().zip(sentence) {
            phonemes.push_str(&clause);
            if let Some(mark) = mark {
                phonemes.push(*mark);
                if matches!(mark, ',' | ':' | ';') {
                    phonemes.push(' ');
                }
            }
        }
        let pad = &self.ids[&PAD];
        let mut ids = self.ids[&BOS].clone();
        ids.extend(pad);
        for id in phonemes.nfd().filter_map(|c| self.ids.get(&c)) {
            ids.extend(id);
            ids.extend(pad);
        }
        ids.extend(&self.ids[&EOS]);
        Ok(ids)
    }

    /// The audio of one sentence's phoneme ids, peak-normalised.
    fn infer(&mut self, ids: Vec<i64>) -> Result<Vec<f32>, TtsError> {
        let failed = |e: ort::Error| TtsError::Engine(format!("the Piper voice failed: {e}"));
        let n = ids.len();
        let input = Tensor::from_array(([1, n], ids)).map_err(failed)?;
        let lengths = Tensor::from_array(([1], vec![n as i64])).map_err(failed)?;
        let scales = Tensor::from_array(([3], self.scales.to_vec())).map_err(failed)?;
        let outputs =
            self.session.run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales]).map_err(failed)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        let peak = audio.iter().fold(0.01f32, |m, s| m.max(s.abs()));
        Ok(audio.iter().map(|s| s / peak).collect())
    }
}

/// The sentences of `text`, each a list of clauses: its words and the mark that closes it.
fn sentences(text: &str) -> Vec<Vec<(&str, Option<char>)>> {
    let (mut all, mut sentence, mut start) = (Vec::new(), Vec::new(), 0);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let mark = match c {
            '…' => '.',
            '.' | ',' | '?' | '!' | ':' | ';' => c,
            _ => continue,
        };
        if chars.peek().is_some_and(|(_, next)| !next.is_whitespace()) {
            continue;
        }
        let words = text[start..i].trim();
        start = i + c.len_utf8();
        if !words.is_empty() {
            sentence.push((words, Some(mark)));
        }
        if matches!(mark, '.' | '?' | '!') && !sentence.is_empty() {
            all.push(std::mem::take(&mut sentence));
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        sentence.push((rest, None));
    }
    if !sentence.is_empty() {
        all.push(sentence);
    }
    all
}

impl Synthesizer for Piper {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn synthesize(&mut self, text: &str, out: &mut dyn FnMut(&[f32]) -> bool) -> Result<(), TtsError> {
        for sentence in sentences(text) {
            let ids = self.ids(&sentence)?;
            let audio = self.infer(ids)?;
            if !out(&audio) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_sentences_into_clauses_with_their_marks() {
        assert_eq!(
            sentences("Well, the capital is Paris. Is it big? Yes: very… 3.5 million"),
            vec![
                vec![("Well", Some(',')), ("the capital is Paris", Some('.'))],
                vec![("Is it big", Some('?'))],
                vec![("Yes", Some(':')), ("very", Some('.'))],
                vec![("3.5 million", None)],
            ]
        );
        assert!(sentences(" . ").is_empty());
    }
}
