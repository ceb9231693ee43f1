//! `murmur`: the command-line face of Murmur's core, thin wrappers over the library. The words
//! the user reads (help, progress, remedies that name flags) are written here, not in the core.

mod bench;
mod bench_voice;
mod chat;
mod llm;
mod models;
mod remedy;
mod serve;
mod speech;
mod voice;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MURMUR_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match remedy::remedy(&e) {
                Some(fix) => eprintln!("error: {e:#}; {fix}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Murmur: a private voice assistant that runs entirely on this computer.
#[derive(Parser)]
#[command(name = "murmur", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch, verify and list the default models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Ask the assistant a question; the answer streams to stdout.
    Ask(llm::AskArgs),
    /// A typed conversation, one question per line of input (optionally saved to a history).
    Chat(chat::ChatArgs),
    /// Continue a raw prompt (no chat template).
    Complete(llm::CompleteArgs),
    /// Serve the model over the OpenAI API (chat completions, completions, models) for other apps.
    Serve(serve::ServeArgs),
    /// Print the token ids of a text as a JSON array (special tokens parsed).
    Tokenize(llm::TokenizeArgs),
    /// Measure prefill and decode speed, side by side with llama.cpp.
    Bench(bench::BenchArgs),
    /// Measure the voice turn: end of speech to transcript, first token, first sentence and
    /// first audio (median of several turns).
    BenchVoice(bench_voice::BenchVoiceArgs),
    /// Transcribe a WAV file.
    Transcribe(speech::TranscribeArgs),
    /// Record from the microphone (until Enter, or for --seconds) and transcribe.
    Listen(speech::ListenArgs),
    /// Speak a text aloud (or into a WAV file with --speak-to).
    Say(voice::SayArgs),
    /// List the voices: the Piper voices of the catalog, then espeak-ng's.
    Voices(voice::VoicesArgs),
    /// One whole voice turn: hear a question (microphone or --in FILE.wav), answer it, speak it.
    Voice(voice::VoiceTurnArgs),
}

impl Cli {
    /// Runs the chosen command.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Models(c) => c.run(),
            Command::Ask(a) => a.run(),
            Command::Chat(a) => a.run(),
            Command::Complete(a) => a.run(),
            Command::Serve(a) => a.run(),
            Command::Tokenize(a) => a.run(),
            Command::Bench(a) => a.run(),
            Command::BenchVoice(a) => a.run(),
            Command::Transcribe(a) => a.run(),
            Command::Listen(a) => a.run(),
            Command::Say(a) => a.run(),
            Command::Voices(a) => a.run(),
            Command::Voice(a) => a.run(),
        }
    }
}
