//! IPC commands: thin calls into `murmur-core`.

use std::sync::Arc;

use murmur_core::llm::{Message, Sampling};
use tauri::ipc::Channel;
use tauri::State;

use crate::AppState;

/// The assistant's default persona.
const SYSTEM: &str =
    "You are Murmur, a friendly voice assistant running on this computer. Answer in one or two short sentences.";

fn wait_for_model<T>(state: &AppState, f: impl FnOnce(&mut murmur_core::llm::Llm) -> Result<T, String>) -> Result<T, String> {
    let mut guard = state.llm.lock().map_err(|e| e.to_string())?;
    while guard.is_none() {
        guard = state.loaded.wait(guard).map_err(|e| e.to_string())?;
    }
    match guard.as_mut().expect("loaded") {
        Ok(llm) => f(llm),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits for the model and describes it.
#[tauri::command]
pub async fn model_status(state: State<'_, Arc<AppState>>) -> Result<String, String> {
    let state = Arc::clone(&state);
    tauri::async_runtime::spawn_blocking(move || {
        wait_for_model(&state, |llm| Ok(format!("ready · {} on {}", llm.info().name, llm.backend_name())))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Answers `question`, sending each piece of text to `on_token` as it is generated.
#[tauri::command]
pub async fn ask(state: State<'_, Arc<AppState>>, question: String, on_token: Channel<String>) -> Result<String, String> {
    let state = Arc::clone(&state);
    tauri::async_runtime::spawn_blocking(move || {
        wait_for_model(&state, |llm| {
            let messages = [
                Message { role: "system".into(), content: SYSTEM.into() },
                Message { role: "user".into(), content: question },
            ];
            let sink = move |text: &str| text.is_empty() || on_token.send(text.to_string()).is_ok();
            let (g, _) = llm.chat(&messages, &Sampling::default(), sink).map_err(|e| e.to_string())?;
            Ok(g.text)
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Stops the answer being generated.
#[tauri::command]
pub fn stop(state: State<'_, Arc<AppState>>) {
    if let Some(c) = state.canceller.lock().ok().and_then(|c| c.clone()) {
        c.cancel();
    }
}
