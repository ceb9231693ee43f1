//! IPC commands: thin calls into the [`Session`].

use std::sync::Arc;

use murmur_core::assistant::Command;
use murmur_core::history::{ConversationInfo, ExportFormat, SavedMessage};
use murmur_core::tts::VoiceInfo;
use tauri::State;

use crate::downloads::{CatalogModel, Downloads};
use crate::session::{Session, Status};
use crate::settings::Settings;

type Shared<'a> = State<'a, Arc<Session>>;

/// Where the model stands.
#[tauri::command]
#[specta::specta]
pub fn status(session: Shared<'_>) -> Status {
    session.status()
}

/// Asks a typed question; the answer arrives as `assistant` events.
#[tauri::command]
#[specta::specta]
pub fn ask(session: Shared<'_>, question: String) -> Result<(), String> {
    session.send(Command::Ask(question))
}

/// Push-to-talk pressed (the button or the hotkey).
#[tauri::command]
#[specta::specta]
pub fn press(session: Shared<'_>) -> Result<(), String> {
    session.send(Command::Press)
}

/// Push-to-talk released.
#[tauri::command]
#[specta::specta]
pub fn release(session: Shared<'_>) -> Result<(), String> {
    session.send(Command::Release)
}

/// Stops listening, generating and speaking.
#[tauri::command]
#[specta::specta]
pub fn stop(session: Shared<'_>) -> Result<(), String> {
    session.send(Command::Stop)
}

/// Starts a new conversation.
#[tauri::command]
#[specta::specta]
pub fn new_chat(session: Shared<'_>) {
    session.new_chat();
}

/// Conversations, newest first, optionally only those mentioning `query`.
#[tauri::command]
#[specta::specta]
pub fn conversations(session: Shared<'_>, query: Option<String>) -> Result<Vec<ConversationInfo>, String> {
    session.conversations(query.as_deref())
}

/// Opens a conversation to read and continue.
#[tauri::command]
#[specta::specta]
pub fn open_conversation(session: Shared<'_>, id: i64) -> Result<Vec<SavedMessage>, String> {
    session.open(id)
}

/// Deletes a conversation.
#[tauri::command]
#[specta::specta]
pub fn delete_conversation(session: Shared<'_>, id: i64) -> Result<(), String> {
    session.delete(id)
}

/// The settings.
#[tauri::command]
#[specta::specta]
pub fn get_settings(session: Shared<'_>) -> Settings {
    session.settings()
}

/// Saves the settings (reloading the models if needed).
#[tauri::command]
#[specta::specta]
pub fn set_settings(session: Shared<'_>, settings: Settings) -> Result<(), String> {
    session.set_settings(settings)
}

/// Drops the remote engine and reloads the local model.
#[tauri::command]
#[specta::specta]
pub fn use_local_model(session: Shared<'_>) -> Result<(), String> {
    session.use_local_model()
}

/// Every voice, and whether each is installed.
#[tauri::command]
#[specta::specta]
pub fn voices() -> Vec<VoiceInfo> {
    murmur_core::tts::voices()
}

/// The speech models of the catalog (`tiny.en`, `base`).
#[tauri::command]
#[specta::specta]
pub fn speech_models() -> Vec<String> {
    murmur_core::models::stt_names()
}

/// The catalog's chat models and whether each is installed.
#[tauri::command]
#[specta::specta]
pub fn catalog() -> Vec<CatalogModel> {
    Downloads::catalog()
}

/// Starts downloading a catalog model; progress arrives as `download` events.
#[tauri::command]
#[specta::specta]
pub fn download_model(downloads: State<'_, Arc<Downloads>>, id: String) -> Result<(), String> {
    downloads.start(id)
}

/// Cancels the running download.
#[tauri::command]
#[specta::specta]
pub fn cancel_download(downloads: State<'_, Arc<Downloads>>) {
    downloads.cancel();
}

/// Asks for a GGUF file of the user's own through the system's file dialog; `None` when the
/// dialog is closed without one.
#[tauri::command]
#[specta::specta]
pub async fn choose_model_file(app: tauri::AppHandle) -> Option<String> {
    use tauri_plugin_dialog::DialogExt;
    let picked = app.dialog().file().set_title("Choose a GGUF model").add_filter("GGUF model", &["gguf"]).blocking_pick_file()?;
    picked.into_path().ok().map(|p| p.display().to_string())
}

/// Renames a conversation.
#[tauri::command]
#[specta::specta]
pub fn rename_conversation(session: Shared<'_>, id: i64, title: String) -> Result<(), String> {
    session.rename(id, &title)
}

/// Exports a conversation as Markdown or JSON to a file the user picks in the system's save
/// dialog; the path written, or `None` when the dialog is closed without one.
#[tauri::command]
#[specta::specta]
pub async fn export_conversation(
    app: tauri::AppHandle,
    session: State<'_, Arc<Session>>,
    id: i64,
    format: ExportFormat,
) -> Result<Option<String>, String> {
    use tauri_plugin_dialog::DialogExt;
    let (text, name) = session.export(id, format)?;
    let kind = match format {
        ExportFormat::Markdown => "Markdown",
        ExportFormat::Json => "JSON",
    };
    let Some(picked) = app
        .dialog()
        .file()
        .set_title("Export the conversation")
        .set_file_name(&name)
        .add_filter(kind, &[format.extension()])
        .blocking_save_file()
    else {
        return Ok(None);
    };
    let path = picked.into_path().map_err(|e| format!("cannot save there: {e}"))?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "conversation exported");
    Ok(Some(path.display().to_string()))
}

/// Opens a web link from a reply in the browser (after the user clicked it; nothing else opens
/// links). Only `http` and `https` links are opened.
#[tauri::command]
#[specta::specta]
pub fn open_link(app: tauri::AppHandle, url: String) -> Result<(), String> {
    use tauri_plugin_opener::OpenerExt;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("only web links open from a reply, not {url}"));
    }
    app.opener().open_url(&url, None::<&str>).map_err(|e| format!("cannot open {url}: {e}"))
}

/// The microphones and speakers this computer has, by name.
#[tauri::command]
#[specta::specta]
pub fn audio_devices() -> AudioDevices {
    use murmur_core::audio::{device_names, Direction};
    AudioDevices { inputs: device_names(Direction::Input), outputs: device_names(Direction::Output) }
}

/// The audio devices Settings offer.
#[derive(Debug, serde::Serialize, specta::Type)]
pub struct AudioDevices {
    /// Microphones.
    pub inputs: Vec<String>,
    /// Speakers.
    pub outputs: Vec<String>,
}
