//! Murmur's desktop shell: the window and thin IPC commands into `murmur-core`.
// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;

use std::sync::{Arc, Mutex};

use murmur_core::llm::{Llm, LlmConfig};
use murmur_core::models;

/// The loaded model, or why it could not be loaded. Loading runs in the background so the
/// window appears at once.
#[derive(Default)]
pub struct AppState {
    llm: Mutex<Option<Result<Llm, String>>>,
    loaded: std::sync::Condvar,
    canceller: Mutex<Option<murmur_core::llm::Canceller>>,
}

fn main() {
    let state = Arc::new(AppState::default());
    let loader = Arc::clone(&state);
    std::thread::spawn(move || {
        let path = std::env::var_os("MURMUR_MODEL").map_or_else(models::default_llm_path, Into::into);
        let result = Llm::load(LlmConfig::new(path)).map_err(|e| e.to_string());
        if let Ok(llm) = &result {
            *loader.canceller.lock().expect("state lock") = Some(llm.canceller());
        }
        *loader.llm.lock().expect("state lock") = Some(result);
        loader.loaded.notify_all();
    });
    tauri::Builder::default()
        .manage(state)
        .invoke_handler(tauri::generate_handler![commands::ask, commands::stop, commands::model_status])
        .run(tauri::generate_context!())
        .expect("error while running the Murmur window");
}
