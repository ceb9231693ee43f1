//! Same-shape synthetic models: a GGUF whose metadata and tensor directory are copied from a
//! given one and whose weights are random (valid blocks of the same types). Speed does not
//! depend on the weights' values, so this benchmarks a model where its file is not at hand:
//! only the file's head (metadata and directory, a few MB) is read, so `head -c 4M model.gguf`
//! is enough to carry.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use half::f16;
use sha2::{Digest, Sha256};

use super::hex;
use crate::compute::WeightType;
use crate::paths;

/// Why a synthetic model could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The head is not a GGUF file Murmur understands.
    #[error("{path} is not a usable GGUF header: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// A tensor's place in the data section and its type.
struct TensorEntry {
    ggml_type: u32,
    elements: u64,
    offset: u64,
}

/// The parts of a GGUF head that a synthetic copy needs.
struct Head {
    /// Bytes up to the start of the data section (copied verbatim).
    bytes: Vec<u8>,
    tensors: Vec<TensorEntry>,
}

/// Bytes and elements per block of the types Murmur runs.
fn block(ggml_type: u32) -> Option<(u64, u64)> {
    WeightType::from_ggml(ggml_type).map(|t| {
        let (bytes, elems) = t.block();
        (bytes as u64, elems as u64)
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n)).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or("it ends inside its metadata (read more of the file's head)")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.u64()?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    /// Skips a metadata value of type `ty`, returning it when it is a u32 (for the alignment).
    fn value(&mut self, ty: u32) -> Result<Option<u32>, String> {
        match ty {
            0 | 1 | 7 => drop(self.take(1)?),
            2 | 3 => drop(self.take(2)?),
            4 => return self.u32().map(Some),
            5 | 6 => drop(self.take(4)?),
            8 => drop(self.string()?),
            9 => {
                let (inner, n) = (self.u32()?, self.u64()?);
                for _ in 0..n {
                    self.value(inner)?;
                }
            }
            10..=12 => drop(self.take(8)?),
            other => return Err(format!("unknown metadata type {other}")),
        }
        Ok(None)
    }
}

fn parse_head(bytes: &[u8]) -> Result<Head, String> {
    let mut c = Cursor { bytes, pos: 0 };
    if c.take(4)? != b"GGUF" {
        return Err("no GGUF magic".into());
    }
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version}"));
    }
    let (n_tensors, n_kv) = (c.u64()?, c.u64()?);
    let mut alignment = 32u64;
    for _ in 0..n_kv {
        let key = c.string()?;
        let ty = c.u32()?;
        if let (Some(v), "general.alignment") = (c.value(ty)?, key.as_str()) {
            alignment = v.max(1) as u64;
        }
    }
    let mut tensors = Vec::new();
    for _ in 0..n_tensors {
        let name = c.string()?;
        let dims = c.u32()?;
        let elements = (0..dims).try_fold(1u64, |acc, _| Ok::<_, String>(acc.saturating_mul(c.u64()?)))?;
        let ggml_type = c.u32()?;
        let offset = c.u64()?;
        if block(ggml_type).is_none() {
            return Err(format!("tensor '{name}' has ggml type {ggml_type}, which Murmur does not run"));
        }
        tensors.push(TensorEntry { ggml_type, elements, offset });
    }
    let data = (c.pos as u64).next_multiple_of(alignment) as usize;
    let mut head = bytes[..c.pos].to_vec();
    head.resize(data, 0);
    Ok(Head { bytes: head, tensors })
}

/// xorshift64*: cheap random bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Random data for a tensor: weights of realistic size (block scales 0.002–0.02, floats near
/// 1 as norms are) so activations stay finite.
fn fill(t: &TensorEntry, rng: &mut Rng, out: &mut impl Write) -> std::io::Result<()> {
    let (bytes, per) = block(t.ggml_type).expect("checked when parsed");
    let blocks = t.elements / per;
    let mut buf = Vec::with_capacity(bytes as usize);
    for _ in 0..blocks {
        buf.clear();
        let ty = WeightType::from_ggml(t.ggml_type).expect("checked when parsed");
        match ty {
            WeightType::F32 => buf.extend((0.9 + 0.2 * rng.unit()).to_le_bytes()),
            WeightType::F16 => buf.extend(f16::from_f32(0.9 + 0.2 * rng.unit()).to_le_bytes()),
            WeightType::BF16 => buf.extend(half::bf16::from_f32(0.9 + 0.2 * rng.unit()).to_le_bytes()),
            _ => {
                buf.extend((0..bytes).map(|_| rng.next() as u8));
                // Super-block scales multiply 6-bit sub-block scales: keep their products small.
                let unit = if per == 32 { 1.0 } else { 1.0 / 32.0 };
                for &at in ty.f16_fields() {
                    buf[at..at + 2].copy_from_slice(&f16::from_f32((0.002 + 0.018 * rng.unit()) * unit).to_le_bytes());
                }
            }
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

/// Writes (once; later calls reuse it) a synthetic copy of the GGUF whose head is in `like`,
/// under the cache directory, and returns its path.
pub fn synthesize(like: &Path) -> Result<PathBuf, SyntheticError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SyntheticError::Io { path, source }
    };
    let mut head = Vec::new();
    // Metadata and the tensor directory fit in the first 64 MiB of any model Murmur runs.
    std::fs::File::open(like).and_then(|f| f.take(64 << 20).read_to_end(&mut head)).map_err(io(like))?;
    let parsed = parse_head(&head).map_err(|reason| SyntheticError::Format { path: like.to_path_buf(), reason })?;
    let digest = Sha256::digest(&parsed.bytes);
    let stem = like.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let dir = paths::cache_dir().join("synthetic");
    let path = dir.join(format!("{stem}.{}.synthetic.gguf", hex(&digest[..6])));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut out = BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
    let mut tensors: Vec<&TensorEntry> = parsed.tensors.iter().collect();
    tensors.sort_by_key(|t| t.offset);
    let mut rng = Rng(u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) | 1);
    let mut at = 0u64;
    out.write_all(&parsed.bytes).map_err(io(&tmp))?;
    for t in tensors {
        let gap = t
            .offset
            .checked_sub(at)
            .ok_or_else(|| SyntheticError::Format { path: like.to_path_buf(), reason: "its tensors overlap".into() })?;
        out.write_all(&vec![0u8; gap as usize]).map_err(io(&tmp))?;
        fill(t, &mut rng, &mut out).map_err(io(&tmp))?;
        let (bytes, per) = block(t.ggml_type).expect("checked when parsed");
        at = t.offset + t.elements / per * bytes;
    }
    out.flush().map_err(io(&tmp))?;
    drop(out);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    tracing::info!(path = %path.display(), "wrote a synthetic model");
    Ok(path)
}
