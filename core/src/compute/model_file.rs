//! The model file as the host and the backends read it: opened once and read with positioned
//! reads, never mapped, so its pages belong to the kernel's file cache rather than to Murmur, and a
//! file that shrinks under Murmur gives an error instead of a SIGBUS. A split model
//! (`name-00001-of-00003.gguf` and its siblings) is its files read as one, in order.
//!
//! Each read checks that the file is still the one that was opened (same length, same
//! modification time) and refuses it otherwise. What the guest reads of the file's head (its
//! metadata) is remembered, so a restarted guest reads the same bytes even after the file changed.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The file changed or shrank since it was opened, so its bytes can no longer be trusted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the model file {} changed on disk since Murmur opened it", .0.display())]
pub struct ModelChanged(pub PathBuf);

/// Most bytes of distinct ranges the guest's reads may leave remembered (a model's metadata is a
/// few MB; a guest reading the whole file gets the rest unremembered).
const MAX_REMEMBERED: usize = 64 << 20;

/// What identifies the file's contents: its length and last modification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(file: &File) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        Ok(Self { len: meta.len(), modified: meta.modified().ok() })
    }
}

/// One file of the model, where it begins in the model's bytes.
struct Part {
    path: PathBuf,
    file: File,
    stamp: Stamp,
    start: u64,
}

enum Source {
    Files(Vec<Part>),
    Memory(Vec<u8>),
}

/// An open model file, or the files of a split model (or model bytes held in memory).
pub struct ModelFile {
    path: PathBuf,
    source: Source,
    len: u64,
    remembered: Mutex<Remembered>,
}

/// The files of the model at `path`: itself, or for one file of a split model
/// (`name-00002-of-00003.gguf`) all of them in order, each required to be there.
pub fn split_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((prefix, count)) = split_name(name) else { return Ok(vec![path.to_path_buf()]) };
    (1..=count)
        .map(|k| {
            let part = path.with_file_name(format!("{prefix}-{k:05}-of-{count:05}.gguf"));
            match part.exists() {
                true => Ok(part),
                false => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "the model is split into {count} files and part {k}, {}, is missing beside the others",
                        part.display()
                    ),
                )),
            }
        })
        .collect()
}

/// The prefix and file count of a split GGUF's name, `prefix-NNNNN-of-MMMMM.gguf`.
fn split_name(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    let (no, count): (u32, u32) = match (digits(no), digits(count)) {
        (true, true) => (no.parse().ok()?, count.parse().ok()?),
        _ => return None,
    };
    (1..=count).contains(&no).then_some((prefix, count))
}

#[derive(Default)]
struct Remembered {
    reads: HashMap<(u64, u32), Arc<[u8]>>,
    bytes: usize,
}

impl ModelFile {
    /// Opens `path` for reading, with the other files of a split model ([`split_files`]); an
    /// empty file is refused.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut parts = Vec::new();
        let mut len = 0;
        for path in split_files(path)? {
            let file = File::open(&path)?;
            let stamp = Stamp::of(&file)?;
            if stamp.len == 0 {
                return Err(std::io::Error::other(format!("{} is empty", path.display())));
            }
            parts.push(Part { path, file, stamp, start: len });
            len += stamp.len;
        }
        Ok(Self { path: parts[0].path.clone(), len, source: Source::Files(parts), remembered: Mutex::default() })
    }

    /// Model bytes that live in memory (a model built in a test).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let len = bytes.len() as u64;
        Self { path: PathBuf::from("(in memory)"), source: Source::Memory(bytes), len, remembered: Mutex::default() }
    }

    /// Where the file is (a split model's first file).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where each file begins in the model's bytes: `[0]` for a whole file.
    pub fn starts(&self) -> Vec<u64> {
        match &self.source {
            Source::Files(parts) => parts.iter().map(|p| p.start).collect(),
            Source::Memory(_) => vec![0],
        }
    }

    /// Bytes in the file when it was opened.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Fills `buf` with the bytes at `offset` (a range the caller checked lies inside
    /// [`ModelFile::len`]).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ModelChanged> {
        match &self.source {
            Source::Memory(bytes) => {
                buf.copy_from_slice(&bytes[offset as usize..offset as usize + buf.len()]);
                Ok(())
            }
            Source::Files(parts) => {
                // The parts the range spans, each read in turn.
                let (mut at, mut buf) = (offset, buf);
                for part in parts.iter().filter(|p| p.start + p.stamp.len > offset) {
                    if buf.is_empty() {
                        break;
                    }
                    let take = buf.len().min((part.start + part.stamp.len - at) as usize);
                    let (here, rest) = buf.split_at_mut(take);
                    let changed = || ModelChanged(part.path.clone());
                    part.file.read_exact_at(here, at - part.start).map_err(|_| changed())?;
                    // A read that raced a writer may hold some old and some new bytes: the
                    // stamp after it tells.
                    if !Stamp::of(&part.file).is_ok_and(|now| now == part.stamp) {
                        return Err(changed());
                    }
                    (at, buf) = (at + take as u64, rest);
                }
                Ok(())
            }
        }
    }

    /// `len` bytes at `offset`, as [`ModelFile::read_at`] reads them.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, ModelChanged> {
        let mut buf = vec![0; len];
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }

    /// Like [`ModelFile::read`], but a range read before gives the bytes it gave then: the guest
    /// reads its metadata through this, and a restarted guest must see what the first one saw.
    pub fn read_remembered(&self, offset: u64, len: u32) -> Result<Vec<u8>, ModelChanged> {
        let mut remembered = crate::sync::lock(&self.remembered);
        if let Some(bytes) = remembered.reads.get(&(offset, len)) {
            return Ok(bytes.to_vec());
        }
        let bytes = self.read(offset, len as usize)?;
        if remembered.bytes + bytes.len() <= MAX_REMEMBERED {
            remembered.bytes += bytes.len();
            remembered.reads.insert((offset, len), bytes.as_slice().into());
        }
        Ok(bytes)
    }

    /// Whether the file on disk is still the one that was opened.
    pub fn unchanged(&self) -> bool {
        match &self.source {
            Source::Memory(_) => true,
            Source::Files(parts) => parts.iter().all(|p| Stamp::of(&p.file).is_ok_and(|now| now == p.stamp)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_are_refused_once_the_file_changes_but_remembered_ranges_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, (0..=255u8).collect::<Vec<_>>()).unwrap();
        let file = ModelFile::open(&path).unwrap();
        assert_eq!(file.read(10, 3).unwrap(), [10, 11, 12]);
        assert_eq!(file.read_remembered(0, 4).unwrap(), [0, 1, 2, 3]);

        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(&[9; 8]).unwrap();
        f.set_len(100).unwrap();
        drop(f);
        assert!(!file.unchanged());
        let err = file.read(10, 3).unwrap_err().to_string();
        assert!(err.contains("m.gguf") && err.contains("changed on disk"), "{err}");
        assert_eq!(file.read_remembered(0, 4).unwrap(), [0, 1, 2, 3], "a remembered range is what was read first");
        assert!(file.read(200, 8).is_err(), "a read past the shrunken end fails instead of faulting");
        assert!(ModelFile::open(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_split_model_reads_as_its_files_in_order_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let part = |k: u32| dir.path().join(format!("m-{k:05}-of-00003.gguf"));
        for k in 1..=3u8 {
            std::fs::write(part(k as u32), vec![k; 10 * k as usize]).unwrap();
        }
        // Any of the files opens the model, from its first.
        let model = ModelFile::open(&part(2)).unwrap();
        assert_eq!((model.len(), model.starts(), model.path()), (60, vec![0, 10, 30], part(1).as_path()));
        assert_eq!(model.read(8, 24).unwrap(), [[1; 2].as_slice(), &[2; 20], &[3; 2]].concat(), "across two seams");
        assert_eq!(split_files(&dir.path().join("m.gguf")).unwrap().len(), 1, "an ordinary name is one file");
        assert_eq!(split_files(&dir.path().join("m-00004-of-00003.gguf")).unwrap().len(), 1, "not a split name");
        std::fs::remove_file(part(2)).unwrap();
        let err = ModelFile::open(&part(1)).err().unwrap().to_string();
        assert!(err.contains("split into 3 files") && err.contains("part 2") && err.contains("m-00002-of-00003.gguf"), "{err}");
    }
}
