//! The model file as the host and the backends read it: opened once and read with positioned
//! reads, never mapped, so its pages belong to the kernel's file cache rather than to Murmur, and a
//! file that shrinks under Murmur gives an error instead of a SIGBUS.
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

enum Source {
    File { file: File, stamp: Stamp },
    Memory(Vec<u8>),
}

/// An open model file (or model bytes held in memory).
pub struct ModelFile {
    path: PathBuf,
    source: Source,
    len: u64,
    remembered: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    reads: HashMap<(u64, u32), Arc<[u8]>>,
    bytes: usize,
}

impl ModelFile {
    /// Opens `path` for reading; an empty file is refused.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let stamp = Stamp::of(&file)?;
        if stamp.len == 0 {
            return Err(std::io::Error::other("the file is empty"));
        }
        Ok(Self { path: path.to_path_buf(), len: stamp.len, source: Source::File { file, stamp }, remembered: Mutex::default() })
    }

    /// Model bytes that live in memory (a model built in a test).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let len = bytes.len() as u64;
        Self { path: PathBuf::from("(in memory)"), source: Source::Memory(bytes), len, remembered: Mutex::default() }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
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
            Source::File { file, stamp } => {
                let changed = || ModelChanged(self.path.clone());
                file.read_exact_at(buf, offset).map_err(|_| changed())?;
                // A read that raced a writer may hold some old and some new bytes: the stamp
                // after it tells.
                match Stamp::of(file) {
                    Ok(now) if now == *stamp => Ok(()),
                    _ => Err(changed()),
                }
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
            Source::File { file, stamp } => Stamp::of(file).is_ok_and(|now| now == *stamp),
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
}
