//! The tray icon: Show, Quick query, Voice output on/off, Quit.

use std::sync::Arc;

use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{App, AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

use crate::session::Session;

/// The label of the quick-query popup.
pub const QUICK: &str = "quick";

/// Adds the tray icon and its menu.
pub fn build(app: &App) -> tauri::Result<()> {
    let voice_on = app.state::<Arc<Session>>().settings().voice_output;
    let show = MenuItem::with_id(app, "show", "Show Murmur", true, None::<&str>)?;
    let quick = MenuItem::with_id(app, "quick", "Quick query…", true, None::<&str>)?;
    let voice = CheckMenuItem::with_id(app, "voice", "Voice output", true, voice_on, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quick, &voice, &PredefinedMenuItem::separator(app)?, &quit])?;
    let mut tray = TrayIconBuilder::with_id("murmur").tooltip("Murmur").menu(&menu);
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.on_menu_event(move |app, event| match event.id.as_ref() {
        "show" => show_window(app, "main"),
        "quick" => quick_query(app),
        "voice" => {
            let session = app.state::<Arc<Session>>();
            let mut settings = session.settings();
            settings.voice_output = !settings.voice_output;
            if let Err(e) = session.set_settings(settings) {
                tracing::warn!("{e}");
            }
        }
        "quit" => app.exit(0),
        _ => {}
    })
    .build(app)?;
    Ok(())
}

fn show_window(app: &AppHandle, label: &str) {
    if let Some(w) = app.get_webview_window(label) {
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Opens (or brings back) the small always-on-top quick-query popup.
pub fn quick_query(app: &AppHandle) {
    if app.get_webview_window(QUICK).is_some() {
        return show_window(app, QUICK);
    }
    let built = WebviewWindowBuilder::new(app, QUICK, WebviewUrl::App("index.html?quick".into()))
        .title("Murmur — quick query")
        .inner_size(520.0, 220.0)
        .always_on_top(true)
        .resizable(false)
        .center()
        .build();
    if let Err(e) = built {
        tracing::warn!("quick query window: {e}");
    }
}
