//! `murmur say`, `murmur voice`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use murmur_core::assistant::{
    Assistant, AssistantConfig, Capture, CaptureFactory, Clip, Command, Event, Output, Timeline, TurnSettings, DEFAULT_SYSTEM,
};
use murmur_core::audio::{AudioOut, Microphone};
use murmur_core::tts::{speakable, SentenceSplitter, VoiceConfig, DEFAULT_RATE, DEFAULT_VOICE};
use serde_json::json;

use super::llm::{ModelArgs, RemoteArgs};

/// How replies sound and where they go.
#[derive(Args)]
pub struct VoiceArgs {
    /// The voice: piper:joe (natural), or espeak:VOICE (fast, robotic); `murmur voices` lists them.
    #[arg(long, default_value = DEFAULT_VOICE)]
    voice: String,
    /// Speaking rate, words per minute (80–450).
    #[arg(long, default_value_t = DEFAULT_RATE)]
    rate: u32,
    /// Write the speech to this WAV file instead of playing it.
    #[arg(long, value_name = "FILE.wav")]
    speak_to: Option<PathBuf>,
    /// Output device name (default: the system's default output).
    #[arg(long)]
    output_device: Option<String>,
}

impl VoiceArgs {
    fn voice(&self) -> VoiceConfig {
        VoiceConfig { voice: self.voice.clone(), rate: self.rate }
    }

    fn output(&self) -> Output {
        match &self.speak_to {
            Some(path) => Output::Wav(path.clone()),
            None => Output::Speaker(self.output_device.clone()),
        }
    }
}

#[derive(Args)]
pub struct SayArgs {
    #[command(flatten)]
    voice: VoiceArgs,
    /// What to say.
    text: String,
}

impl SayArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let loaded = self.voice.voice().synthesizer()?;
        if let Some(message) = loaded.fallback_notice() {
            eprintln!("{message}");
        }
        let mut tts = loaded.synthesizer;
        let out = match &self.voice.speak_to {
            Some(path) => AudioOut::wav(path, tts.sample_rate())?,
            None => AudioOut::speaker(self.voice.output_device.as_deref(), tts.sample_rate())?,
        };
        let epoch = out.epoch();
        let mut splitter = SentenceSplitter::new();
        let mut sentences = splitter.push(&self.text);
        sentences.extend(splitter.finish());
        for words in sentences.iter().filter_map(|s| speakable(s)) {
            let mut failed = None;
            tts.synthesize(&words, &mut |chunk| out.queue(epoch, chunk, None).map_err(|e| failed = Some(e)).unwrap_or(false))?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        out.drain(epoch);
        out.finish()?;
        out.check()?;
        eprintln!("{:.2} s of speech → {}", out.played_seconds(), out.target());
        Ok(())
    }
}

#[derive(Args)]
pub struct VoicesArgs {
    /// Print them as one JSON array.
    #[arg(long)]
    json: bool,
}

impl VoicesArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let voices = murmur_core::tts::voices();
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{}", serde_json::to_string(&voices)?)?;
            return Ok(());
        }
        for v in voices {
            let note = if v.installed { "" } else { "  (not installed: murmur models fetch)" };
            writeln!(out, "{:<24} {}{note}", v.id, v.description)?;
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct VoiceTurnArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    voice: VoiceArgs,
    /// The question as a WAV file (any rate, depth, channels) instead of the microphone.
    #[arg(long = "in", value_name = "FILE.wav", conflicts_with_all = ["mic", "seconds"])]
    input: Option<PathBuf>,
    /// Ask through the microphone (the default without --in): until Enter, or for --seconds.
    #[arg(long)]
    mic: bool,
    /// Record this many seconds instead of until Enter.
    #[arg(long)]
    seconds: Option<f32>,
    /// Input device name (default: the system's default microphone).
    #[arg(long)]
    input_device: Option<String>,
    /// ggml Whisper model file (default: the converted --stt model).
    #[arg(long)]
    speech_model: Option<PathBuf>,
    /// The speech model: tiny.en (the default) or base (more accurate, multilingual).
    #[arg(long, default_value = murmur_core::models::DEFAULT_STT)]
    stt: String,
    /// The language a multilingual speech model hears (`en`, `fr`, …, or `auto`).
    #[arg(long, default_value = murmur_core::speech::DEFAULT_LANGUAGE)]
    language: String,
    /// Do not speak the reply (show it only).
    #[arg(long, conflicts_with = "speak_to")]
    silent: bool,
    /// The system prompt.
    #[arg(long, default_value = DEFAULT_SYSTEM)]
    system: String,
    /// Print one JSON object: transcript, answer, and the turn's timeline.
    #[arg(long)]
    json: bool,
}

impl VoiceTurnArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let capture: CaptureFactory = match &self.input {
            Some(path) => {
                let clip = Clip::open(path)?;
                Box::new(move || Ok(Box::new(clip) as Box<dyn Capture>))
            }
            None => {
                let device = self.input_device.clone();
                Box::new(move || Ok(Box::new(Microphone::open(device.as_deref())?) as Box<dyn Capture>))
            }
        };
        let mut config = AssistantConfig {
            turn: TurnSettings { system: self.system.clone(), ..TurnSettings::default() },
            voice: self.voice.voice(),
            output: if self.silent { Output::Silent } else { self.voice.output() },
            remote: self.remote.config(),
            ..AssistantConfig::new(self.model.config())
        };
        config.speech_model = Some(match &self.speech_model {
            Some(path) => path.clone(),
            None => murmur_core::models::speech_model(&self.stt)?,
        });
        config.speech.language = self.language.clone();
        let assistant = Assistant::start(config, capture)?;
        assistant.send(Command::Press);
        if self.input.is_none() {
            match self.seconds {
                Some(s) => {
                    eprintln!("listening for {s} s…");
                    std::thread::sleep(Duration::from_secs_f32(s.max(0.0)));
                }
                None => {
                    eprintln!("listening; press Enter to stop");
                    std::io::stdin().lock().read_line(&mut String::new())?;
                }
            }
        }
        assistant.send(Command::Release);
        let (heard, answer, timeline) = self.follow(&assistant)?;
        if self.json {
            println!("{}", json!({ "transcript": heard, "answer": answer, "timeline": timeline }));
        }
        Ok(())
    }

    /// Shows the turn as it happens; returns what was heard, the answer and the timeline.
    fn follow(&self, assistant: &Assistant) -> anyhow::Result<(String, String, Timeline)> {
        let (mut heard, mut answer) = (String::new(), String::new());
        while let Some(event) = assistant.recv() {
            match event {
                Event::Notice { message } => eprintln!("note: {message}"),
                Event::Error { message, .. } => anyhow::bail!(message),
                Event::Question { text, spoken: true, .. } => {
                    if !self.json {
                        eprintln!("you: {text}");
                    }
                    heard = text;
                }
                Event::Token { text, .. } if !self.json => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(text.as_bytes());
                    let _ = out.flush();
                }
                Event::Reply { text, .. } => answer = text,
                Event::Done { timeline, .. } => {
                    if !self.json {
                        println!();
                    }
                    return Ok((heard, answer, timeline));
                }
                _ => {}
            }
        }
        anyhow::bail!("the assistant stopped before the turn ended")
    }
}
