//! End-to-end tests live in `tests/`; this crate holds what they share.

use std::path::PathBuf;
use std::process::Command;

/// The release `murmur` CLI (or `$MURMUR_BIN`), ready to be given arguments.
pub fn murmur() -> Command {
    let bin = std::env::var_os("MURMUR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/murmur"));
    assert!(bin.exists(), "{} is missing: build with `cargo build --release` (./dev test does)", bin.display());
    Command::new(bin)
}

/// SmolLM2, the catalog's quickest chat model (a catalog id `--model` accepts): tests of
/// anything but the default model's answers (durability, soak, GPU counts, token ids) run it.
pub const QUICK_MODEL: &str = "smollm2-135m";
