//! Where Murmur keeps files on this machine.

use std::path::PathBuf;

/// `$XDG_CACHE_HOME/murmur` (or `~/.cache/murmur`).
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("murmur")
}

/// Model files: `$MURMUR_MODELS_DIR`, or `cache_dir()/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("MURMUR_MODELS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models"))
}
