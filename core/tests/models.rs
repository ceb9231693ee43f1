//! Manifest verification with real downloaded files.

use murmur_core::models::{self, FetchOptions, Manifest, ModelError};

fn models_dir() -> std::path::PathBuf {
    murmur_core::paths::models_dir()
}

#[test]
fn a_corrupted_copy_of_a_real_model_is_rejected_and_deleted() {
    let manifest = Manifest::builtin();
    let entry = manifest.get("llm").unwrap();
    let real = models::file_path(&models_dir(), &entry.files[0]);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(&entry.files[0].file);
    let mut bytes = std::fs::read(&real).expect("run `murmur models fetch` first");
    bytes[1_000_000] ^= 0x40;
    std::fs::write(&copy, &bytes).unwrap();
    let err = models::verify_or_delete(&copy, &entry.files[0].sha256, |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelError::HashMismatch { .. }));
    assert!(text.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{text}");
    assert!(text.contains(&entry.files[0].sha256), "{text}");
    assert!(!copy.exists(), "the corrupt file was kept");
}

#[test]
fn a_corrupted_archive_is_rejected_naming_it_and_its_hash() {
    let manifest = Manifest::builtin();
    let entry = manifest.get("speech").unwrap();
    let real = models_dir().join(".archives").join(&entry.archive);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(&entry.archive);
    let mut bytes = std::fs::read(&real).expect("fetch keeps the verified archive");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&copy, &bytes).unwrap();
    let text = models::verify_or_delete(&copy, &entry.archive_sha256, |_| {}).unwrap_err().to_string();
    assert!(text.contains(&entry.archive) && text.contains(&entry.archive_sha256), "{text}");
}

#[test]
fn fetch_is_idempotent_and_needs_no_download_when_installed() {
    // `false` as the Python: any attempt to download would fail the test.
    let opts = FetchOptions { dir: models_dir(), python: "false".into(), progress: false };
    for entry in &Manifest::builtin().models {
        assert!(!models::fetch(entry, &opts).unwrap(), "{} was fetched again", entry.id);
        for f in &entry.files {
            assert_eq!(models::status(&models_dir(), f).unwrap(), models::FileStatus::Verified);
        }
    }
}

#[test]
fn a_damaged_install_is_repaired_from_the_kept_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = Manifest::builtin();
    let entry = manifest.get("speech").unwrap();
    let archives = tmp.path().join(".archives");
    std::fs::create_dir_all(&archives).unwrap();
    std::fs::copy(models_dir().join(".archives").join(&entry.archive), archives.join(&entry.archive)).unwrap();
    let opts = FetchOptions { dir: tmp.path().to_path_buf(), python: "false".into(), progress: false };
    assert!(models::fetch(entry, &opts).unwrap());
    let config = models::file_path(tmp.path(), &entry.files[1]);
    std::fs::write(&config, b"{}").unwrap();
    assert!(matches!(models::status(tmp.path(), &entry.files[1]).unwrap(), models::FileStatus::Unverified { .. }));
    assert!(models::fetch(entry, &opts).unwrap());
    assert_eq!(models::status(tmp.path(), &entry.files[1]).unwrap(), models::FileStatus::Verified);
}
