//! GGUF v2/v3 parsing: header, metadata and tensor infos, read through the host's `read-model`
//! (or, for the fuzz targets, from a byte slice: see [`ModelBytes`]).
//!
//! Every count, length and offset is checked against the file size before anything is
//! allocated, so a hostile file cannot make the guest allocate more than the file is large.

use std::collections::HashMap;

use crate::bindings::murmur::llm::compute::{self, Dtype};
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const CHUNK: u32 = 1 << 20;

/// One metadata value.
#[derive(Debug, Clone)]
pub enum Value {
    /// Any integer type, widened.
    Int(i64),
    /// `f32` or `f64`.
    Float(f64),
    /// `bool`.
    Bool(bool),
    /// UTF-8 string (lossily decoded).
    Str(String),
    /// An array of values.
    Array(Vec<Value>),
}

/// Where a tensor lives in the file and how it is stored.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// GGUF dimensions, innermost first (`ne0` = elements per row).
    pub dims: Vec<u64>,
    /// Storage type.
    pub dtype: Dtype,
    /// Absolute byte offset in the file.
    pub offset: u64,
}

/// A parsed GGUF file: metadata and tensor directory. Tensor data stays in the host's mapping.
pub struct Gguf {
    /// Metadata key/value pairs.
    pub meta: HashMap<String, Value>,
    /// Tensor directory by name.
    pub tensors: HashMap<String, TensorInfo>,
}

/// Random access to a model file's bytes.
pub trait ModelBytes {
    /// The file's length in bytes.
    fn size(&self) -> u64;
    /// `len` bytes at `offset` (the caller keeps both inside [`ModelBytes::size`]).
    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>>;
}

/// The model file the host has opened, read through `compute.read-model`.
pub struct HostModel;

impl ModelBytes for HostModel {
    fn size(&self) -> u64 {
        compute::model_size()
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>> {
        Ok(compute::read_model(offset, len)?)
    }
}

impl ModelBytes for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>> {
        Ok(self[offset as usize..][..len as usize].to_vec())
    }
}

/// One file of a split model: `len` bytes of `source` from `start`.
struct Slice<'a, S: ModelBytes + ?Sized> {
    source: &'a S,
    start: u64,
    len: u64,
}

impl<S: ModelBytes + ?Sized> ModelBytes for Slice<'_, S> {
    fn size(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.source.read(self.start + offset, len)
    }
}

/// Buffered sequential reader over a model file.
struct Reader<'a, S: ModelBytes + ?Sized> {
    source: &'a S,
    size: u64,
    buf: Vec<u8>,
    buf_start: u64,
    pos: u64,
}

impl<'a, S: ModelBytes + ?Sized> Reader<'a, S> {
    fn new(source: &'a S) -> Self {
        Self { source, size: source.size(), buf: Vec::new(), buf_start: 0, pos: 0 }
    }

    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn bytes(&mut self, len: u64) -> Result<&[u8]> {
        if len > self.remaining() {
            return Err(Error::Model(format!(
                "the model file is truncated: needs {len} bytes at offset {}, but it is {} bytes long",
                self.pos, self.size
            )));
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos + len > buf_end {
            let want = len.max(CHUNK as u64).min(self.remaining());
            let want = u32::try_from(want).map_err(|_| Error::Model("metadata entry too large".into()))?;
            self.buf = self.source.read(self.pos, want)?;
            self.buf_start = self.pos;
        }
        let at = (self.pos - self.buf_start) as usize;
        self.pos += len;
        Ok(&self.buf[at..at + len as usize])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.bytes(N as u64)?.try_into().expect("length checked"))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count of items each at least `min_item` bytes: rejected if the file cannot hold them.
    fn count(&mut self, what: &str, min_item: u64) -> Result<u64> {
        let n = self.u64()?;
        if n.saturating_mul(min_item) > self.remaining() {
            return Err(Error::Model(format!(
                "corrupt GGUF: {what} count {n} does not fit in the remaining {} bytes",
                self.remaining()
            )));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String> {
        let len = self.count("string length", 1)?;
        Ok(String::from_utf8_lossy(self.bytes(len)?).into_owned())
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::Int(self.array::<1>()?[0] as i64),
            1 => Value::Int(self.array::<1>()?[0] as i8 as i64),
            2 => Value::Int(u16::from_le_bytes(self.array()?) as i64),
            3 => Value::Int(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::Int(self.u32()? as i64),
            5 => Value::Int(i32::from_le_bytes(self.array()?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.array()?) as f64),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth == 0 => {
                let item_ty = self.u32()?;
                let n = self.count("array", 1)?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(item_ty, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::Int(self.u64()? as i64),
            11 => Value::Int(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            9 => return Err(Error::Model("corrupt GGUF: nested arrays are not supported".into())),
            other => return Err(Error::Model(format!("corrupt GGUF: unknown metadata type {other}"))),
        })
    }
}

/// The ggml tensor types Murmur runs: ggml's number, name, the contract's type, and bytes and
/// elements per block.
const TYPES: [(u32, &str, Dtype, u64, u64); 15] = [
    (0, "F32", Dtype::F32, 4, 1),
    (1, "F16", Dtype::F16, 2, 1),
    (2, "Q4_0", Dtype::Q40, 18, 32),
    (3, "Q4_1", Dtype::Q41, 20, 32),
    (6, "Q5_0", Dtype::Q50, 22, 32),
    (7, "Q5_1", Dtype::Q51, 24, 32),
    (8, "Q8_0", Dtype::Q80, 34, 32),
    (10, "Q2_K", Dtype::Q2k, 84, 256),
    (11, "Q3_K", Dtype::Q3k, 110, 256),
    (12, "Q4_K", Dtype::Q4k, 144, 256),
    (13, "Q5_K", Dtype::Q5k, 176, 256),
    (14, "Q6_K", Dtype::Q6k, 210, 256),
    (20, "IQ4_NL", Dtype::Iq4nl, 18, 32),
    (23, "IQ4_XS", Dtype::Iq4xs, 136, 256),
    (30, "BF16", Dtype::Bf16, 2, 1),
];

/// The name of a ggml tensor type Murmur does not run, for error messages.
fn other_type_name(t: u32) -> &'static str {
    match t {
        9 => "Q8_1",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        21 => "IQ3_S",
        22 => "IQ2_S",
        29 => "IQ1_M",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        _ => "unknown",
    }
}

fn dtype_of(t: u32, name: &str) -> Result<Dtype> {
    match TYPES.iter().find(|e| e.0 == t) {
        Some(e) => Ok(e.2),
        None => {
            let supported: Vec<&str> = TYPES.iter().map(|e| e.1).collect();
            Err(Error::Unsupported(format!(
                "tensor '{name}' uses ggml type {t} ({}); Murmur supports {} — pick a GGUF quantised with one of those",
                other_type_name(t),
                supported.join(", ")
            )))
        }
    }
}

/// Bytes per block and elements per block of a storage type.
pub fn block_layout(dtype: Dtype) -> (u64, u64) {
    let e = TYPES.iter().find(|e| e.2 == dtype).expect("every dtype is in the table");
    (e.3, e.4)
}

impl Gguf {
    /// Parses the model file `source` (the host's: [`HostModel`]).
    pub fn parse<S: ModelBytes + ?Sized>(source: &S) -> Result<Self> {
        let mut r = Reader::new(source);
        if &r.array::<4>()? != MAGIC {
            return Err(Error::Model("not a GGUF file (bad magic); Murmur's LLM needs a .gguf model".into()));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::Unsupported(format!("GGUF version {version}; Murmur reads versions 2 and 3")));
        }
        let n_tensors = r.count("tensor", 24)?;
        let n_kv = r.count("metadata", 12)?;
        let mut meta = HashMap::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty, 0)?;
            meta.insert(key, value);
        }
        let alignment = match meta.get("general.alignment") {
            Some(Value::Int(a)) if *a > 0 && (*a as u64).is_power_of_two() => *a as u64,
            None => 32,
            Some(other) => return Err(Error::Model(format!("corrupt GGUF: general.alignment is {other:?}"))),
        };
        let mut infos = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims == 0 || n_dims > 4 {
                return Err(Error::Model(format!("corrupt GGUF: tensor '{name}' has {n_dims} dimensions")));
            }
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
            let ty = r.u32()?;
            let rel = r.u64()?;
            infos.push((name, dims, ty, rel));
        }
        let data_start = r.pos.div_ceil(alignment) * alignment;
        let mut tensors = HashMap::with_capacity(infos.len());
        for (name, dims, ty, rel) in infos {
            let dtype = dtype_of(ty, &name)?;
            let (block_bytes, block_elems) = block_layout(dtype);
            let elems = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            let bytes =
                elems.filter(|e| dims[0] % block_elems == 0 && *e > 0).and_then(|e| (e / block_elems).checked_mul(block_bytes));
            let offset = data_start.checked_add(rel);
            match (bytes, offset) {
                (Some(b), Some(o)) if o.checked_add(b).is_some_and(|end| end <= r.size) => {}
                _ => {
                    return Err(Error::Model(format!(
                        "the model file is truncated or corrupt: tensor '{name}' ({dims:?}) lies outside the {} byte file",
                        r.size
                    )))
                }
            }
            tensors.insert(name, TensorInfo { dims, dtype, offset: offset.expect("checked") });
        }
        Ok(Self { meta, tensors })
    }

    /// Parses a model whose files begin at `starts` in `source` (one, or those of a split GGUF):
    /// the metadata is the first file's, the tensors are all of theirs, each at its place in
    /// `source`. The files must be the ones the first names (`split.count`, each its `split.no`,
    /// `split.tensors.count` in all).
    pub fn parse_split<S: ModelBytes + ?Sized>(source: &S, starts: &[u64]) -> Result<Self> {
        let ends: Vec<u64> = starts.iter().skip(1).copied().chain([source.size()]).collect();
        let file = |k: usize| {
            let (start, end) = (starts[k], ends[k]);
            if end <= start || end > source.size() {
                return Err(Error::Model(format!("file {} of the model lies outside it", k + 1)));
            }
            Self::parse(&Slice { source, start, len: end - start })
        };
        let mut model = file(0)?;
        let count = model.int("split.count").unwrap_or(1).max(1);
        if count != starts.len() as i64 {
            return Err(Error::Model(format!(
                "the model's first file says it is split into {count} files, and {} were found beside it",
                starts.len()
            )));
        }
        for (k, &start) in starts.iter().enumerate().skip(1) {
            let part = file(k)?;
            if part.int("split.no") != Some(k as i64) || part.int("split.count") != Some(count) {
                return Err(Error::Model(format!("file {} of the split model is not its part {} of {count}", k + 1, k + 1)));
            }
            for (name, mut info) in part.tensors {
                info.offset += start;
                if model.tensors.insert(name.clone(), info).is_some() {
                    return Err(Error::Model(format!("tensor '{name}' is in more than one file of the split model")));
                }
            }
        }
        match model.int("split.tensors.count") {
            Some(n) if count > 1 && n != model.tensors.len() as i64 => {
                Err(Error::Model(format!("the split model should hold {n} tensors but its files hold {}", model.tensors.len())))
            }
            _ => Ok(model),
        }
    }

    /// A string metadata value.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.meta.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer metadata value.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.meta.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// A required positive integer that fits in `u32`.
    pub fn req_u32(&self, key: &str) -> Result<u32> {
        self.int(key)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| Error::Model(format!("the model's metadata lacks a valid '{key}'")))
    }

    /// A float metadata value.
    pub fn float(&self, key: &str) -> Option<f64> {
        match self.meta.get(key) {
            Some(Value::Float(f)) => Some(*f),
            Some(Value::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }

    /// A boolean metadata value.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.meta.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// An array metadata value.
    pub fn array(&self, key: &str) -> Option<&[Value]> {
        match self.meta.get(key) {
            Some(Value::Array(a)) => Some(a),
            _ => None,
        }
    }
}
