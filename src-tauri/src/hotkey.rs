//! The global hold-to-talk shortcut: pressed starts listening, released sends.

use std::sync::Arc;

use murmur_core::assistant::Command;
use tauri::{AppHandle, Manager};
use tauri_plugin_global_shortcut::{GlobalShortcutExt, ShortcutState};

use crate::session::Session;

/// Makes `shortcut` (e.g. `Ctrl+Alt+Space`) the only hold-to-talk key.
pub fn register(app: &AppHandle, shortcut: &str) -> Result<(), String> {
    let shortcuts = app.global_shortcut();
    shortcuts.unregister_all().map_err(|e| e.to_string())?;
    shortcuts
        .on_shortcut(shortcut, |app, _, event| {
            let command = match event.state {
                ShortcutState::Pressed => Command::Press,
                ShortcutState::Released => Command::Release,
            };
            if let Err(e) = app.state::<Arc<Session>>().send(command) {
                tracing::warn!("hotkey: {e}");
            }
        })
        .map_err(|e| format!("the shortcut '{shortcut}' cannot be used ({e}); pick another in Settings"))
}
