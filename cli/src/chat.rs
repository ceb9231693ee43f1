//! `murmur chat`: a typed conversation in the terminal, one question per line, through the same
//! assistant as the app, optionally saved into a chat history (the app's, or any file).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Args;
use murmur_core::assistant::{
    Assistant, AssistantConfig, CaptureFactory, Command, Conversation, Event, Output, TurnSettings, DEFAULT_SYSTEM,
};
use murmur_core::audio::AudioError;
use murmur_core::history::History;
use murmur_core::llm::Sampling;
use serde_json::json;

use super::llm::{ModelArgs, RemoteArgs};

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Save each completed exchange into this chat history (the app keeps its own as
    /// `history.sqlite` in its data directory).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Most tokens per reply.
    #[arg(long, default_value_t = Sampling::default().max_tokens)]
    max_tokens: u32,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = Sampling::default().temperature)]
    temp: f32,
    /// The system prompt.
    #[arg(long, default_value = DEFAULT_SYSTEM)]
    system: String,
    /// Print JSON lines instead of text: `{"token": …}` as the reply streams, then
    /// `{"question": …, "answer": …, "conversation": id}` once the exchange is saved (`null`
    /// when it was not).
    #[arg(long)]
    json: bool,
}

impl ChatArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut conversation = self.history.as_deref().map(History::open).transpose()?.map(Conversation::new);
        let no_mic: CaptureFactory = Box::new(|| Err(AudioError::NoInput("a typed chat has no microphone".into())));
        let config = AssistantConfig {
            turn: TurnSettings {
                system: self.system.clone(),
                sampling: Sampling { temperature: self.temp, max_tokens: self.max_tokens, ..Sampling::default() },
                speak: false,
            },
            speech_model: None,
            output: Output::Silent,
            remote: self.remote.config(),
            ..AssistantConfig::new(self.model.config())
        };
        let assistant = Assistant::start(config, no_mic)?;
        if !self.json {
            eprintln!(
                "model on {}; one question per line, /new starts a new conversation, end of input quits",
                assistant.device()
            );
        }
        for line in std::io::stdin().lock().lines() {
            let question = line?;
            match question.trim() {
                "" => continue,
                "/new" => {
                    if let Some(c) = conversation.as_mut() {
                        c.start_new();
                    }
                    assistant.send(Command::Converse(Vec::new()));
                    continue;
                }
                _ => {}
            }
            assistant.send(Command::Ask(question.clone()));
            // A failed turn (a remote engine that went away, say) is reported, and the chat goes on.
            let (answer, saved) = match self.follow(&assistant, conversation.as_mut()) {
                Ok(reply) => reply,
                Err(Turn::Failed(message)) => {
                    match self.json {
                        true => println!("{}", json!({ "question": question, "error": message })),
                        false => eprintln!("error: {message}"),
                    }
                    continue;
                }
                Err(Turn::Stopped) => anyhow::bail!("the assistant stopped before the reply ended"),
            };
            if self.json {
                println!("{}", json!({ "question": question, "answer": answer, "conversation": saved }));
            }
        }
        Ok(())
    }

    /// Streams one reply to stdout, saving the exchange into `conversation`; returns the reply
    /// whole, and the conversation it was saved in. A failed save (a full disk, say) loses only
    /// this exchange's record: the chat goes on.
    fn follow(&self, assistant: &Assistant, mut conversation: Option<&mut Conversation>) -> Result<(String, Option<i64>), Turn> {
        let (mut answer, mut failed, mut saved) = (String::new(), None, None);
        while let Some(event) = assistant.recv() {
            match conversation.as_mut().and_then(|c| c.record(&event)) {
                Some(Ok(id)) => saved = Some(id),
                Some(Err(e)) => eprintln!("note: {e}"),
                None => {}
            }
            match event {
                Event::Notice { message } => eprintln!("note: {message}"),
                // A turn's failure is followed by its end; one outside a turn is not.
                Event::Error { message, turn: None } => return Err(Turn::Failed(message)),
                Event::Error { message, .. } => failed = Some(message),
                Event::Token { text, .. } => {
                    let mut out = std::io::stdout().lock();
                    let _ = match self.json {
                        true => writeln!(out, "{}", json!({ "token": text })),
                        false => out.write_all(text.as_bytes()),
                    };
                    let _ = out.flush();
                }
                Event::Reply { text, .. } => answer = text,
                Event::Done { .. } => {
                    if let Some(message) = failed {
                        return Err(Turn::Failed(message));
                    }
                    if !self.json {
                        println!();
                    }
                    return Ok((answer, saved));
                }
                _ => {}
            }
        }
        Err(Turn::Stopped)
    }
}

/// How a turn can end without a reply.
enum Turn {
    /// It failed; the message says why.
    Failed(String),
    /// The assistant stopped.
    Stopped,
}
