//! The global shortcuts: hold-to-talk (pressed starts listening, released sends) and the
//! quick-query popup. Both work while Murmur's windows are hidden.

use std::sync::Arc;

use murmur_core::assistant::Command;
use tauri::{AppHandle, Manager};
use tauri_plugin_global_shortcut::{GlobalShortcutExt, ShortcutState};

use crate::session::Session;
use crate::settings::Settings;

/// Makes the settings' shortcuts the only ones registered.
pub fn register(app: &AppHandle, settings: &Settings) -> Result<(), String> {
    let shortcuts = app.global_shortcut();
    shortcuts.unregister_all().map_err(|e| e.to_string())?;
    let unusable = |key: &str, e: tauri_plugin_global_shortcut::Error| {
        format!("the shortcut '{key}' cannot be used ({e}); pick another in Settings")
    };
    shortcuts
        .on_shortcut(settings.hotkey.as_str(), |app, _, event| {
            let command = match event.state {
                ShortcutState::Pressed => Command::Press,
                ShortcutState::Released => Command::Release,
            };
            if let Err(e) = app.state::<Arc<Session>>().send(command) {
                tracing::warn!("hotkey: {e}");
            }
        })
        .map_err(|e| unusable(&settings.hotkey, e))?;
    shortcuts
        .on_shortcut(settings.quick_hotkey.as_str(), |app, _, event| {
            if event.state == ShortcutState::Pressed {
                crate::tray::quick_query(app);
            }
        })
        .map_err(|e| unusable(&settings.quick_hotkey, e))
}
