//! Where Murmur keeps files on this machine.

use std::path::PathBuf;

/// The platform's cache directory, then `murmur`: `$XDG_CACHE_HOME/murmur` or
/// `~/.cache/murmur` on Linux, `~/Library/Caches/murmur` on macOS, `%LOCALAPPDATA%\murmur` on
/// Windows (the temporary directory where there is none).
pub fn cache_dir() -> PathBuf {
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("murmur")
}

/// Model files: `$MURMUR_MODELS_DIR`, or `cache_dir()/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("MURMUR_MODELS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models"))
}
