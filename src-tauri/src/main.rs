//! Murmur's desktop shell: windows, tray, hotkey and thin IPC into `murmur-core`'s assistant.
// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod downloads;
mod hotkey;
mod ipc;
mod logging;
mod session;
mod settings;
mod tray;

use std::path::PathBuf;

use tauri::Manager;

/// `--mic-file FILE.wav`: use a recording instead of the microphone (for tests and demos).
fn mic_file() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        if a == "--mic-file" {
            return args.next().map(PathBuf::from);
        }
    }
    None
}

/// Brings the chat window to the front: what launching Murmur again does.
fn focus_main(app: &tauri::AppHandle) {
    tracing::info!("Murmur was launched again: showing the running window");
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}

fn main() {
    logging::init();
    let ipc = ipc::builder();
    let handler = ipc.invoke_handler();
    tauri::Builder::default()
        // First: a second launch hands over to the running app and exits before it touches the
        // hotkeys or the history.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| focus_main(app)))
        .plugin(tauri_plugin_global_shortcut::Builder::new().build())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .setup(move |app| {
            ipc.mount_events(app);
            // `MURMUR_DATA_DIR` keeps a test's history, settings and log apart from the user's.
            let (data_dir, log_dir) = match std::env::var_os("MURMUR_DATA_DIR") {
                Some(dir) => (PathBuf::from(&dir), PathBuf::from(dir).join("logs")),
                None => (app.path().app_data_dir()?, app.path().app_log_dir()?),
            };
            if let Err(e) = logging::open(&log_dir) {
                tracing::warn!("no log file in {}: {e}", log_dir.display());
            }
            let session = session::Session::start(app.handle().clone(), data_dir, mic_file())?;
            let settings = session.settings();
            app.manage(session);
            app.manage(std::sync::Arc::new(downloads::Downloads::new(app.handle().clone())));
            if let Err(e) = hotkey::register(app.handle(), &settings) {
                tracing::warn!("{e}");
            }
            tray::build(app)?;
            Ok(())
        })
        .invoke_handler(handler)
        .run(tauri::generate_context!())
        .expect("error while running the Murmur window");
}
