//! The app's log: warnings (or `MURMUR_LOG`'s filter) on stderr, and everything from info up in
//! `murmur.log` in the app's log directory, where a user can find it to report a problem. The
//! file opens once the directory is known (in Tauri's setup); what comes before goes to stderr
//! only. A log past [`MAX_BYTES`] is moved to `murmur.old.log` at start.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Largest log kept as it is when the app starts.
const MAX_BYTES: u64 = 5 << 20;

/// The log file, once it is open.
static FILE: OnceLock<Mutex<File>> = OnceLock::new();

/// Writes to the log file, or nowhere before it is open.
struct LogFile;

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match FILE.get() {
            Some(f) => murmur_core::sync::lock(f).write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        FILE.get().map_or(Ok(()), |f| murmur_core::sync::lock(f).flush())
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFile;

    fn make_writer(&'a self) -> Self::Writer {
        LogFile
    }
}

/// Starts logging to stderr, and to the file once [`open`] names its directory.
pub fn init() {
    let stderr = EnvFilter::try_from_env("MURMUR_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(stderr))
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(LogFile).with_filter(EnvFilter::new("info")))
        .init();
}

/// Opens `murmur.log` in `dir` (created if need be) for the rest of the run.
pub fn open(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("murmur.log");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_BYTES) {
        std::fs::rename(&path, dir.join("murmur.old.log"))?;
    }
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    let _ = FILE.set(Mutex::new(file));
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "Murmur started");
    Ok(())
}
