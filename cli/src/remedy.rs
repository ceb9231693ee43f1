//! What the command line adds to the core's errors: the flag or command that fixes them. The
//! core says what went wrong; each front end says what to do about it in its own terms.

use murmur_core::assistant::AssistantError;
use murmur_core::llm::LlmError;
use murmur_core::models::ModelError;
use murmur_core::server::ServerError;
use murmur_core::speech::SpeechError;
use murmur_core::tts::TtsError;

/// The CLI's remedy for `e` (or any error in its chain), if it has one.
pub fn remedy(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<AssistantError>() {
            return match e {
                AssistantError::Llm(e) => llm(e),
                AssistantError::Speech(e) => speech(e),
                AssistantError::Tts(e) => tts(e),
                _ => None,
            };
        }
        if let Some(e) = cause.downcast_ref::<LlmError>() {
            return llm(e);
        }
        if let Some(e) = cause.downcast_ref::<SpeechError>() {
            return speech(e);
        }
        if let Some(e) = cause.downcast_ref::<TtsError>() {
            return tts(e);
        }
        if let Some(e) = cause.downcast_ref::<ModelError>() {
            return match e {
                ModelError::HashMismatch { .. } => Some("run `murmur models fetch` again".into()),
                ModelError::Unknown(_) => Some("`murmur models list` names the catalog's models".into()),
                _ => None,
            };
        }
        match cause.downcast_ref::<ServerError>()? {
            ServerError::Bind { .. } => Some("pick another port with --port".into()),
            ServerError::Origin(_) => Some("--cors takes one origin, such as http://localhost:3000".into()),
            _ => None,
        }
    })
}

fn llm(e: &LlmError) -> Option<String> {
    match e {
        LlmError::Open { .. } => Some("run `murmur models fetch`, or pass --model PATH".into()),
        LlmError::NoGpu(_) => Some("use --backend cpu (or auto)".into()),
        LlmError::TooLarge { .. } => Some("`murmur models list` shows the smaller models".into()),
        _ => None,
    }
}

fn speech(e: &SpeechError) -> Option<String> {
    match e {
        SpeechError::NotInstalled { .. } => Some("run `murmur models fetch` and `murmur models convert`".into()),
        _ => None,
    }
}

fn tts(e: &TtsError) -> Option<String> {
    match e {
        TtsError::NotInstalled { model, .. } => Some(format!("run `murmur models fetch {model}`")),
        TtsError::Setting(_) => Some("`murmur voices` lists the voices".into()),
        TtsError::Engine(_) => None,
    }
}
