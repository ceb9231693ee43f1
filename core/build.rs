//! Builds the sandboxed guest (`inference-guest/`, wasm32-wasip2) so that a plain `cargo build`
//! yields a `murmur` with the guest embedded. It builds in `<target>/guest` with its own release
//! profile (stripped, SIMD on), so host and guest builds never wait on each other's locks.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("core/ sits in the workspace root");
    for watched in ["inference-guest/src", "inference-guest/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let guest_dir = target_dir.join("guest");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--locked", "-p", "murmur-inference-guest", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&guest_dir)
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .status()
        .expect("running cargo to build the guest");
    if !status.success() {
        panic!(
            "building the guest component failed (see above). It needs the wasm32-wasip2 target: \
             `rustup target add wasm32-wasip2` (rust-toolchain.toml lists it)"
        );
    }
    let wasm = guest_dir.join("wasm32-wasip2/release/murmur_inference_guest.wasm");
    println!("cargo:rustc-env=MURMUR_GUEST_WASM={}", wasm.display());
    println!("cargo:rustc-env=MURMUR_GUEST_SHA256={}", sha256_hex(&wasm));
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}
