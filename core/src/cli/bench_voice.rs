//! `murmur bench-voice`: the voice turn's timeline (end of speech → transcript → first token →
//! first sentence → first audio), median of several turns on one warm assistant.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use murmur_core::assistant::{Assistant, AssistantConfig, Clip, Command, Event, Output, Timeline};
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
    /// Play through the default output device instead of writing a WAV file.
    #[arg(long)]
    speaker: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

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
        let input = self.input.clone().unwrap_or_else(|| PathBuf::from("../shared/audio/question-france.wav"));
        let clip = Clip::open(&input)?;
        let seconds = murmur_core::audio::read_wav(&input)?.len() as f64 / f64::from(murmur_core::audio::SAMPLE_RATE);
        let scratch = tempfile_path();
        let config = AssistantConfig {
            output: if self.speaker { Output::Speaker(None) } else { Output::Wav(scratch.clone()) },
            ..AssistantConfig::new(self.model.config())
        };
        let assistant = Assistant::start(config, Box::new(move || Ok(Box::new(clip))))?;
        let mut timelines = Vec::new();
        for run in 0..=self.runs {
            assistant.send(Command::Press);
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
        if self.json {
            let stages: serde_json::Map<String, serde_json::Value> =
                medians.iter().map(|(n, v)| (n.replace(' ', "_") + "_ms", json!(v))).collect();
            println!(
                "{}",
                json!({
                    "input": input, "speech_seconds": seconds, "runs": timelines.len(),
                    "output": if self.speaker { "speaker" } else { "wav" },
                    "median": stages, "whisper": {"mel_ms": mel, "encode_ms": encode, "decode_ms": decode},
                    "turns": timelines,
                })
            );
            return Ok(());
        }
        println!(
            "voice turn: {} ({seconds:.2} s of speech), median of {} turns, speech {}",
            input.display(),
            timelines.len(),
            if self.speaker { "played on the default output" } else { "written to a WAV file" }
        );
        println!("{:<20} {:>9} {:>9}", "stage", "after EoS", "stage");
        let mut previous = 0.0;
        for (name, v) in &medians {
            let v = v.unwrap_or(f64::NAN);
            println!("{name:<20} {v:>6.0} ms {:>6.0} ms", v - previous);
            previous = v;
        }
        let f = |x: Option<f64>| x.unwrap_or(f64::NAN);
        println!("whisper: mel {:.0} ms, encode {:.0} ms, decode {:.0} ms", f(mel), f(encode), f(decode));
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
