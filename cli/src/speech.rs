//! `murmur transcribe`, `murmur listen`.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use murmur_core::audio::{read_wav, Microphone};
use murmur_core::models;
use murmur_core::speech::{SpeechConfig, Transcriber, Transcript};
use serde_json::json;

/// Options shared by the commands that load the speech model.
#[derive(Args)]
pub struct SpeechArgs {
    /// ggml Whisper model file (default: the converted --stt model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The speech model: tiny.en (the default) or base (more accurate, multilingual).
    #[arg(long, default_value = models::DEFAULT_STT)]
    stt: String,
    /// The language a multilingual model hears (`en`, `fr`, …, or `auto`).
    #[arg(long, default_value = murmur_core::speech::DEFAULT_LANGUAGE)]
    language: String,
    /// whisper.cpp threads (default: up to 4 cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Encode Whisper's full 30-second window even for short clips.
    #[arg(long)]
    full_window: bool,
    /// Encoder positions to use (50 per second of audio; 1500 is the full window).
    #[arg(long)]
    audio_ctx: Option<usize>,
    /// Decoder beams (1: greedy).
    #[arg(long, default_value_t = murmur_core::speech::DEFAULT_BEAM)]
    beam: usize,
    /// Print one JSON object with the text and timings.
    #[arg(long)]
    json: bool,
}

impl SpeechArgs {
    fn load(&self) -> anyhow::Result<(Transcriber, Duration)> {
        let mut config = SpeechConfig {
            full_window: self.full_window,
            audio_ctx: self.audio_ctx,
            beam_size: self.beam,
            language: self.language.clone(),
            ..SpeechConfig::default()
        };
        if let Some(t) = self.threads {
            config.threads = t.max(1);
        }
        let start = Instant::now();
        let path = match &self.model {
            Some(path) => path.clone(),
            None => models::speech_model(&self.stt)?,
        };
        let t = Transcriber::load(&path, config)?;
        Ok((t, start.elapsed()))
    }

    fn print(&self, transcript: &Transcript, load: Duration) {
        if self.json {
            let mut out = serde_json::to_value(transcript.timings).expect("timings serialise");
            out["text"] = json!(transcript.text);
            out["load_ms"] = json!(load.as_secs_f64() * 1e3);
            println!("{out}");
        } else {
            println!("{}", transcript.text);
        }
    }
}

#[derive(Args)]
pub struct TranscribeArgs {
    #[command(flatten)]
    speech: SpeechArgs,
    /// A WAV file (any rate, depth and channel count).
    file: PathBuf,
}

impl TranscribeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let audio = read_wav(&self.file)?;
        let (mut t, load) = self.speech.load()?;
        let transcript = t.transcribe(&audio)?;
        self.speech.print(&transcript, load);
        Ok(())
    }
}

#[derive(Args)]
pub struct ListenArgs {
    #[command(flatten)]
    speech: SpeechArgs,
    /// Record for this many seconds instead of until Enter.
    #[arg(long)]
    seconds: Option<f32>,
    /// Input device name (default: the system's default microphone).
    #[arg(long)]
    device: Option<String>,
}

impl ListenArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let (mut t, load) = self.speech.load()?;
        let mic = Microphone::open(self.device.as_deref())?;
        mic.press();
        match self.seconds {
            Some(s) => {
                eprintln!("listening on {} for {s} s…", mic.name());
                let end = Instant::now() + Duration::from_secs_f32(s.max(0.0));
                while Instant::now() < end && !mic.is_interrupted() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            None => {
                eprintln!("listening on {}; press Enter to stop", mic.name());
                std::io::stdin().lock().read_line(&mut String::new())?;
            }
        }
        let recording = mic.release()?;
        if let Some(why) = &recording.interrupted {
            eprintln!("the microphone stopped ({why}); transcribing what was recorded");
        }
        let transcript = t.transcribe(&recording.audio)?;
        self.speech.print(&transcript, load);
        Ok(())
    }
}
