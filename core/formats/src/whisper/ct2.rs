//! Reading a CTranslate2 `model.bin` (binary version 4 and later): named variables with their
//! shapes, types and bytes, plus aliases. Every count and length is checked against the file.

use std::collections::BTreeMap;

use super::bytes::{ReadError, Reader};

/// Element type of a CTranslate2 variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Type {
    /// 32-bit float.
    F32,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
}

impl Ct2Type {
    fn from_code(code: u8) -> Result<Self, ReadError> {
        Ok(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return Err(ReadError(format!("unknown CTranslate2 data type {code}"))),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
        }
    }
}

/// One variable of the model.
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    /// Shape, outermost first (PyTorch orientation).
    pub dims: Vec<usize>,
    /// Element type.
    pub ty: Ct2Type,
    /// The raw little-endian elements.
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// The value of a scalar integer flag.
    pub fn scalar(&self) -> Option<i64> {
        if !self.dims.is_empty() {
            return None;
        }
        Some(match (self.ty, self.data) {
            (Ct2Type::I8, [b]) => *b as i8 as i64,
            (Ct2Type::I16, [a, b]) => i16::from_le_bytes([*a, *b]) as i64,
            (Ct2Type::I32, [a, b, c, d]) => i32::from_le_bytes([*a, *b, *c, *d]) as i64,
            _ => return None,
        })
    }
}

/// A parsed `model.bin`, borrowing the file's bytes.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    /// The spec name, e.g. `WhisperSpec`.
    pub spec: String,
    /// Variables by name.
    pub variables: BTreeMap<String, Variable<'a>>,
    /// Alias name → target name.
    pub aliases: BTreeMap<String, String>,
}

const MAX_RANK: usize = 8;

fn string(r: &mut Reader, what: &str) -> Result<String, ReadError> {
    let len = r.u16(what)? as usize;
    let raw = r.bytes(len, what)?;
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    String::from_utf8(raw.to_vec()).map_err(|_| ReadError(format!("{what} is not UTF-8")))
}

impl<'a> Ct2Model<'a> {
    /// Parses `data`, the whole `model.bin`.
    pub fn parse(data: &'a [u8]) -> Result<Self, ReadError> {
        let mut r = Reader::new(data);
        let version = r.u32("the binary version")?;
        if !(4..=6).contains(&version) {
            return Err(ReadError(format!("CTranslate2 binary version {version} is not supported (4 to 6 are)")));
        }
        let spec = string(&mut r, "the spec name")?;
        r.u32("the spec revision")?;
        let count = r.u32("the variable count")? as usize;
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let name = string(&mut r, "a variable name")?;
            let rank = r.u8("a rank")? as usize;
            if rank > MAX_RANK {
                return Err(ReadError(format!("{name} has rank {rank}")));
            }
            let dims = (0..rank).map(|_| r.u32("a dimension").map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
            let ty = Ct2Type::from_code(r.u8("a data type")?)?;
            let bytes = r.u32("a byte count")? as usize;
            let elems = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if elems.and_then(|e| e.checked_mul(ty.size())) != Some(bytes) {
                return Err(ReadError(format!("{name}: {bytes} bytes do not hold a {dims:?} {ty:?} tensor")));
            }
            let data = r.bytes(bytes, &name)?;
            variables.insert(name, Variable { dims, ty, data });
        }
        let mut aliases = BTreeMap::new();
        if !r.at_end() {
            let n = r.u32("the alias count")?;
            for _ in 0..n {
                let alias = string(&mut r, "an alias")?;
                aliases.insert(alias, string(&mut r, "an alias target")?);
            }
        }
        Ok(Self { spec, variables, aliases })
    }

    /// The variable `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<&Variable<'a>, ReadError> {
        self.variables.get(name).ok_or_else(|| ReadError(format!("the model has no variable {name}")))
    }
}
