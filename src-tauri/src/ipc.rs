//! The window's typed interface: every command and event, described once here, from which
//! tauri-specta writes `ui/src/bindings.ts` (the TypeScript the window calls). A test fails when
//! the committed bindings differ from what these types make.

use murmur_core::assistant::Event;
use tauri_specta::{collect_commands, collect_events};

use crate::commands;
use crate::downloads::DownloadEvent;
use crate::session::Status;

/// One of the assistant's events, for every window.
#[derive(Debug, Clone, serde::Serialize, specta::Type, tauri_specta::Event)]
pub struct AssistantEvent(pub Event);

/// The status line changed.
#[derive(Debug, Clone, serde::Serialize, specta::Type, tauri_specta::Event)]
pub struct StatusEvent(pub Status);

/// The history changed: a saved exchange names its conversation (the one on screen); a rename
/// names none.
#[derive(Debug, Clone, serde::Serialize, specta::Type, tauri_specta::Event)]
pub struct HistoryEvent(pub Option<i64>);

/// Where the generated bindings live, from this crate.
#[cfg(test)]
const BINDINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/bindings.ts");

/// The commands and events the window may use.
pub fn builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        // A failed command rejects its promise with the message, as `invoke` does.
        .error_handling(tauri_specta::ErrorHandlingMode::Throw)
        .commands(collect_commands![
            commands::status,
            commands::ask,
            commands::press,
            commands::release,
            commands::stop,
            commands::new_chat,
            commands::conversations,
            commands::open_conversation,
            commands::delete_conversation,
            commands::rename_conversation,
            commands::export_conversation,
            commands::get_settings,
            commands::set_settings,
            commands::use_local_model,
            commands::catalog,
            commands::voices,
            commands::speech_models,
            commands::audio_devices,
            commands::download_model,
            commands::cancel_download,
            commands::choose_model_file,
            commands::open_link,
        ])
        .events(collect_events![AssistantEvent, StatusEvent, HistoryEvent, DownloadEvent])
}

/// The TypeScript bindings of [`builder`].
#[cfg(test)]
fn bindings() -> String {
    use specta_typescript::{BigIntExportBehavior, Typescript};
    let ts = Typescript::default().bigint(BigIntExportBehavior::Number).header("// @ts-nocheck\n");
    builder().export_str(ts).expect("the IPC types export to TypeScript")
}

#[cfg(test)]
mod tests {
    /// The window's bindings are the ones the commands and events make. With
    /// `MURMUR_WRITE_BINDINGS=1` the test writes them instead (after changing an IPC type).
    #[test]
    fn the_committed_bindings_match_the_ipc_types() {
        let fresh = super::bindings();
        if std::env::var_os("MURMUR_WRITE_BINDINGS").is_some() {
            std::fs::write(super::BINDINGS, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(super::BINDINGS).unwrap_or_default();
        assert!(
            committed == fresh,
            "ui/src/bindings.ts is out of date: run `MURMUR_WRITE_BINDINGS=1 cargo test -p murmur-app bindings`"
        );
    }
}
