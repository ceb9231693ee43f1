//! The model catalog for the settings pane: which chat models are installed, and one download
//! at a time in the background, reported to the windows as [`DownloadEvent`]s, cancellable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use murmur_core::models::{self, FetchOptions, FetchStep, Manifest, Role};
use murmur_core::sync::lock;
use tauri::AppHandle;
use tauri_specta::Event as _;

/// A chat model of the catalog, as the settings pane lists it.
#[derive(Debug, Clone, serde::Serialize, specta::Type)]
pub struct CatalogModel {
    /// Catalog id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is good for.
    pub description: String,
    /// Architecture family.
    pub family: String,
    /// Weight quantisation.
    pub quantization: String,
    /// Bytes on disk.
    pub size: u64,
    /// Where it is (or will be) installed.
    pub path: PathBuf,
    /// Whether its file is there, whole (fetching verifies its hash).
    pub installed: bool,
    /// Whether it is the default chat model.
    pub default: bool,
}

/// What a download is doing, for the window's progress bar.
#[derive(Debug, Clone, serde::Serialize, specta::Type, tauri_specta::Event)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DownloadEvent {
    /// Under way: `text` says which step, `fraction` how far the whole download is.
    Progress {
        /// The model.
        id: String,
        /// What is happening.
        text: String,
        /// 0 to 1.
        fraction: f64,
    },
    /// Installed and verified.
    Finished {
        /// The model.
        id: String,
    },
    /// Failed or cancelled; the message says why.
    Failed {
        /// The model.
        id: String,
        /// What went wrong.
        message: String,
    },
}

/// Downloads of catalog models.
pub struct Downloads {
    app: AppHandle,
    running: Mutex<Option<String>>,
    cancel: Arc<AtomicBool>,
}

impl Downloads {
    /// No download running.
    pub fn new(app: AppHandle) -> Self {
        Self { app, running: Mutex::new(None), cancel: Arc::new(AtomicBool::new(false)) }
    }

    /// The catalog's chat models.
    pub fn catalog() -> Vec<CatalogModel> {
        let manifest = Manifest::builtin();
        manifest
            .with_role(Role::Llm)
            .map(|m| {
                let path = models::llm_path(m);
                let installed = std::fs::metadata(&path).is_ok_and(|md| md.len() == m.files[0].size);
                CatalogModel {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    description: m.description.clone(),
                    family: m.family.clone(),
                    quantization: m.quantization.clone(),
                    size: m.size(),
                    path,
                    installed,
                    default: m.id == manifest.default_llm,
                }
            })
            .collect()
    }

    /// Starts downloading catalog model `id` (one download at a time).
    pub fn start(self: &Arc<Self>, id: String) -> Result<(), String> {
        let manifest = Manifest::builtin();
        let entry = manifest.get(&id).cloned().ok_or_else(|| models::ModelError::Unknown(id.clone()).to_string())?;
        {
            let mut running = lock(&self.running);
            if let Some(other) = running.as_ref() {
                return Err(format!("{other} is still downloading; wait for it or cancel it first"));
            }
            *running = Some(id.clone());
        }
        self.cancel.store(false, Ordering::SeqCst);
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            let python = std::env::var("MURMUR_PYTHON").unwrap_or_else(|_| "python3".into());
            let opts = FetchOptions { dir: murmur_core::paths::models_dir(), python };
            let parts = entry.archives.len() as f64;
            let mut last = (String::new(), -1.0);
            let result = models::fetch(&entry, &opts, &mut |p| {
                let within = if p.total > 0 { p.done as f64 / p.total as f64 } else { 0.0 };
                // Downloads and checks are most of the time; installing is the last tenth.
                let (text, fraction) = match p.step {
                    FetchStep::Download { part, parts: n, .. } => {
                        (format!("downloading part {part} of {n}"), (part as f64 - 1.0) / parts * 0.9)
                    }
                    FetchStep::Verify { package } => (format!("checking {package}"), 0.9 * within / parts.max(1.0)),
                    FetchStep::Install { .. } => ("installing".to_string(), 0.9 + 0.1 * within),
                };
                // One event per step and per percent: a gigabyte is a thousand progress calls.
                if text != last.0 || fraction - last.1 >= 0.01 {
                    last = (text.clone(), fraction);
                    let _ = DownloadEvent::Progress { id: entry.id.clone(), text, fraction }.emit(&me.app);
                }
                !me.cancel.load(Ordering::SeqCst)
            });
            *lock(&me.running) = None;
            let event = match result {
                Ok(_) => DownloadEvent::Finished { id: entry.id.clone() },
                Err(e) => DownloadEvent::Failed { id: entry.id.clone(), message: e.to_string() },
            };
            let _ = event.emit(&me.app);
        });
        Ok(())
    }

    /// Asks the running download to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}
