//! `murmur bench-voice`: the voice turn's timeline (key release → transcript → first token →
//! first sentence → first audio), median of several turns on one warm assistant. The question
//! is spoken in real time with the key held, and the key goes up when the clip ends, as a user
//! lets go after their last word.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use murmur_core::assistant::{Assistant, AssistantConfig, Clip, Command, Event, Output, Timeline};
use murmur_core::tts::{Piper, PiperFiles, PiperOptions, Synthesizer, VoiceConfig, DEFAULT_RATE, DEFAULT_VOICE};
use serde_json::json;

use super::llm::ModelArgs;

#[derive(Args)]
pub struct BenchVoiceArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The spoken question (default: ../shared/audio/question-france.wav).
    #[arg(long = "in", value_name = "FILE.wav")]
    input: Option<PathBuf>,
    /// Turns to measure (after one warm-up turn).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Hand the whole clip over at the key release instead of speaking it in real time, so
    /// nothing can be heard ahead (to compare).
    #[arg(long)]
    at_once: bool,
    /// Play through the default output device instead of writing a WAV file.
    #[arg(long)]
    speaker: bool,
    /// The speech model: tiny.en or base.
    #[arg(long, default_value = murmur_core::models::DEFAULT_STT)]
    stt: String,
    /// The voice that speaks the answers (`murmur voices` lists them).
    #[arg(long, default_value = DEFAULT_VOICE)]
    voice: String,
    /// Measure the Piper voice alone instead: time to first audio and real-time factor for
    /// sentences of 1, 5 and 20 words, at 1 and 2 threads.
    #[arg(long)]
    synthesis: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The sentences `--synthesis` speaks: 1, 5 and 20 words.
const SYNTHESIS_SENTENCES: [&str; 3] = [
    "Hello.",
    "Paris is the French capital.",
    "The train to the coast leaves the station at seven in the morning, so we should pack our bags tonight.",
];

/// Reads one stage's time from a timeline.
type Stage = fn(&Timeline) -> Option<f64>;

/// The stages reported, in order.
const STAGES: [(&str, Stage); 5] = [
    ("transcript ready", |t| t.transcript_ms),
    ("first token", |t| t.first_token_ms),
    ("first sentence", |t| t.first_sentence_ms),
    ("first audio sample", |t| t.first_audio_ms),
    ("last audio sample", |t| t.last_audio_ms),
];

impl BenchVoiceArgs {
    pub fn run(self) -> anyhow::Result<()> {
        if self.synthesis {
            return self.synthesis();
        }
        let input = self.input.clone().unwrap_or_else(|| PathBuf::from("../shared/audio/question-france.wav"));
        let clip = Clip::open(&input)?;
        let seconds = clip.seconds();
        // The key goes up at the clip's end, this long after the last word.
        let quiet_ms = clip.quiet_tail() * 1e3;
        let (clip, held) = if self.at_once { (clip, 0.0) } else { (clip.in_real_time(), seconds) };
        let scratch = tempfile_path();
        let config = AssistantConfig {
            output: if self.speaker { Output::Speaker(None) } else { Output::Wav(scratch.clone()) },
            voice: VoiceConfig { voice: self.voice.clone(), rate: DEFAULT_RATE },
            speech_model: Some(murmur_core::models::speech_model(&self.stt)?),
            ..AssistantConfig::new(self.model.config())
        };
        let assistant = Assistant::start(config, Box::new(move || Ok(Box::new(clip))))?;
        let mut timelines = Vec::new();
        for run in 0..=self.runs {
            assistant.send(Command::Press);
            std::thread::sleep(Duration::from_secs_f64(held));
            assistant.send(Command::Release);
            let t = turn(&assistant).with_context(|| format!("turn {run}"))?;
            if run > 0 {
                timelines.push(t);
            }
        }
        drop(assistant);
        let _ = std::fs::remove_file(&scratch);

        let medians: Vec<(&str, Option<f64>)> =
            STAGES.iter().map(|(name, pick)| (*name, median(timelines.iter().filter_map(pick).collect()))).collect();
        let part = |pick: Stage| median(timelines.iter().filter_map(pick).collect());
        let (mel, encode, decode) = (
            part(|t| t.speech.map(|s| s.mel_ms)),
            part(|t| t.speech.map(|s| s.encode_ms)),
            part(|t| t.speech.map(|s| s.decode_ms)),
        );
        let heard_ahead = timelines.iter().filter(|t| t.heard_ahead).count();
        if self.json {
            let stages: serde_json::Map<String, serde_json::Value> =
                medians.iter().map(|(n, v)| (n.replace(' ', "_") + "_ms", json!(v))).collect();
            println!(
                "{}",
                json!({
                    "input": input, "speech_seconds": seconds, "runs": timelines.len(), "at_once": self.at_once,
                    "output": if self.speaker { "speaker" } else { "wav" },
                    "median": stages, "whisper": {"mel_ms": mel, "encode_ms": encode, "decode_ms": decode},
                    "last_word_to_key_up_ms": quiet_ms,
                    "heard_ahead": heard_ahead,
                    "turns": timelines,
                })
            );
            return Ok(());
        }
        println!(
            "voice turn: {} ({seconds:.2} s of speech, {}), median of {} turns, speech {}",
            input.display(),
            if self.at_once { "handed over at the key release" } else { "spoken in real time" },
            timelines.len(),
            if self.speaker { "played on the default output" } else { "written to a WAV file" }
        );
        println!("{:<20} {:>12} {:>9}", "stage", "after key up", "stage");
        let mut previous = 0.0;
        for (name, v) in &medians {
            let v = v.unwrap_or(f64::NAN);
            println!("{name:<20} {v:>9.0} ms {:>6.0} ms", v - previous);
            previous = v;
        }
        let f = |x: Option<f64>| x.unwrap_or(f64::NAN);
        println!("whisper: mel {:.0} ms, encode {:.0} ms, decode {:.0} ms", f(mel), f(encode), f(decode));
        if !self.at_once {
            let audio = medians.iter().find(|(n, _)| *n == "first audio sample").and_then(|(_, v)| *v);
            println!(
                "the key went up {quiet_ms:.0} ms after the last word: first audio {:.0} ms after the last word",
                f(audio) + quiet_ms
            );
        }
        println!("heard ahead (at a pause before the key went up): {heard_ahead} of {} turns", timelines.len());
        Ok(())
    }
}

impl BenchVoiceArgs {
    /// Piper's synthesis of [`SYNTHESIS_SENTENCES`], median of `runs` after a warm-up each.
    fn synthesis(&self) -> anyhow::Result<()> {
        let files = PiperFiles::catalog("joe").context("the catalog has no Piper voice 'joe'")?;
        let mut rows = Vec::new();
        for threads in [1, 2] {
            let mut piper = Piper::load(&files, PiperOptions { threads, ..PiperOptions::default() })?;
            for sentence in SYNTHESIS_SENTENCES {
                piper.synthesize_all(sentence)?;
                let (mut times, mut audio) = (Vec::new(), 0.0);
                for _ in 0..self.runs.max(1) {
                    let start = Instant::now();
                    let samples = piper.synthesize_all(sentence)?;
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                    audio = samples.len() as f64 / f64::from(piper.sample_rate());
                }
                let ms = median(times).expect("at least one run");
                let words = sentence.split_whitespace().count();
                rows.push(
                    json!({"threads": threads, "words": words, "first_audio_ms": ms, "audio_s": audio, "rtf": ms / 1e3 / audio}),
                );
            }
        }
        if self.json {
            println!("{}", json!({ "voice": "piper:joe", "runs": self.runs, "sentences": rows }));
            return Ok(());
        }
        println!("Piper voice joe, median of {} runs (one sentence: its first audio is all of it)", self.runs.max(1));
        println!("{:>7} {:>5} {:>14} {:>8} {:>6}", "threads", "words", "first audio", "audio", "RTF");
        for r in rows {
            let n = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "{:>7} {:>5} {:>11.0} ms {:>6.2} s {:>6.3}",
                n("threads"),
                n("words"),
                n("first_audio_ms"),
                n("audio_s"),
                n("rtf")
            );
        }
        Ok(())
    }
}

/// Waits for the turn to end; its timeline.
fn turn(assistant: &Assistant) -> anyhow::Result<Timeline> {
    loop {
        match assistant.next_event(Duration::from_secs(120)) {
            Some(Event::Done { timeline, .. }) => return Ok(timeline),
            Some(Event::Error { message, .. }) => anyhow::bail!(message),
            Some(_) => {}
            None => anyhow::bail!("the turn did not finish"),
        }
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

fn tempfile_path() -> PathBuf {
    std::env::temp_dir().join(format!("murmur-bench-voice-{}.wav", std::process::id()))
}
