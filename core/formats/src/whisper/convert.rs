//! CTranslate2 Whisper export → the ggml file whisper.cpp loads (`murmur models convert`).
//!
//! The mapping follows `../shared/reference/whisper-formats.md`: fused Q/K/V rows split, the
//! cross-attention K/V split out of `linear_1`, key biases dropped (softmax cancels them), the
//! output projection tied to the token embedding, 1-D tensors and positional embeddings in f32,
//! the Slaney mel filters written into the file and the byte-level vocabulary mapped back to bytes.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use half::f16;

use super::bytes::ReadError;
use super::ct2::{Ct2Model, Ct2Type, Variable};
use super::ggml::{expected_tensors, GgmlWhisper, GgmlWriter, Hparams, TensorSpec, TensorType};
use super::mel;

/// What can go wrong converting a model.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The input is not a CTranslate2 Whisper export this converter understands.
    #[error("{path}: {reason}")]
    Input {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The files of a CTranslate2 Whisper export directory.
pub struct Ct2Export {
    /// `model.bin`.
    pub model: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
}

impl Ct2Export {
    /// The export in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self { model: dir.join("model.bin"), tokenizer: dir.join("tokenizer.json") }
    }
}

/// Summary of a conversion.
#[derive(Debug, Clone, Copy)]
pub struct Converted {
    /// Dimensions of the model written.
    pub hparams: Hparams,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes written.
    pub bytes: u64,
}

fn read(path: &Path) -> Result<Vec<u8>, ConvertError> {
    std::fs::read(path).map_err(|source| ConvertError::Io { path: path.into(), source })
}

/// Converts `export` into a ggml file at `out` (checked by parsing it back, written to a
/// temporary name, then renamed, so `out` is either absent or complete).
pub fn convert(export: &Ct2Export, out: &Path) -> Result<Converted, ConvertError> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
        move |source| ConvertError::Io { path: path.into(), source }
    }
    let (converted, written) = to_ggml(export, &read(&export.model)?, &read(&export.tokenizer)?)?;
    let tmp = out.with_extension("partial");
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    (&file).write_all(&written).and_then(|()| file.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, out).map_err(io(out))?;
    tracing::info!(out = %out.display(), tensors = converted.tensors, "converted Whisper model");
    Ok(converted)
}

/// The ggml file for the bytes of `export`'s `model.bin` and `tokenizer.json` (its paths name
/// the culprit in errors), built in memory and checked by parsing it back.
pub fn to_ggml(export: &Ct2Export, model_bytes: &[u8], tokenizer_bytes: &[u8]) -> Result<(Converted, Vec<u8>), ConvertError> {
    fn bad(path: &Path) -> impl FnOnce(ReadError) -> ConvertError + '_ {
        move |e| ConvertError::Input { path: path.into(), reason: e.0 }
    }
    let vocab = vocabulary(tokenizer_bytes).map_err(bad(&export.tokenizer))?;
    let model = Ct2Model::parse(model_bytes).map_err(bad(&export.model))?;
    let h = hparams(&model).map_err(bad(&export.model))?;
    let specs = expected_tensors(&h);
    // Writes to a Vec cannot fail.
    let in_memory = "writing to memory";
    let mut w = GgmlWriter::new(Vec::new(), &h).expect(in_memory);
    w.filters(h.n_mels, &mel::filters(h.n_mels)).expect(in_memory);
    w.vocab(&vocab).expect(in_memory);
    for spec in &specs {
        let data = tensor_data(&model, spec, &h).map_err(bad(&export.model))?;
        w.tensor(spec, &data).expect(in_memory);
    }
    let written = w.finish();
    GgmlWhisper::parse(&written)
        .map_err(|e| ConvertError::Input { path: export.model.clone(), reason: format!("the converted model does not check out: {}", e.0) })?;
    Ok((Converted { hparams: h, tensors: specs.len(), bytes: written.len() as u64 }, written))
}

fn flag(model: &Ct2Model, name: &str) -> Option<i64> {
    model.variables.get(name).and_then(Variable::scalar)
}

fn count_layers(model: &Ct2Model, stack: &str) -> usize {
    (0..).take_while(|i| model.variables.contains_key(&format!("{stack}/layer_{i}/self_attention/linear_0/weight"))).count()
}

/// Dimensions from the variables' shapes, after refusing what whisper.cpp cannot run.
fn hparams(model: &Ct2Model) -> Result<Hparams, ReadError> {
    if model.spec != "WhisperSpec" {
        return Err(ReadError(format!("a {} model is not a Whisper model", model.spec)));
    }
    for (name, want) in [
        ("encoder/activation", 3),
        ("decoder/activation", 3),
        ("encoder/pre_norm", 1),
        ("decoder/pre_norm", 1),
        ("decoder/scale_embeddings", 0),
        ("decoder/alibi", 0),
    ] {
        if let Some(v) = flag(model, name).filter(|&v| v != want) {
            return Err(ReadError(format!("{name} is {v}; whisper.cpp only runs {want}")));
        }
    }
    let tied = model.aliases.get("decoder/projection/weight").is_none_or(|t| t == "decoder/embeddings/weight");
    if !tied || model.variables.contains_key("decoder/projection/weight") {
        return Err(ReadError("the output projection is not tied to the token embedding, which whisper.cpp requires".into()));
    }
    let dims2 = |name: &str| -> Result<(usize, usize), ReadError> {
        match model.get(name)?.dims[..] {
            [a, b] => Ok((a, b)),
            ref d => Err(ReadError(format!("{name} has shape {d:?}, expected 2 dimensions"))),
        }
    };
    let heads = |name: &str| flag(model, name).and_then(|v| usize::try_from(v).ok()).ok_or_else(|| ReadError(format!("the model has no {name}")));
    let (n_vocab, _) = dims2("decoder/embeddings/weight")?;
    let (n_audio_ctx, n_audio_state) = dims2("encoder/position_encodings/encodings")?;
    let (n_text_ctx, n_text_state) = dims2("decoder/position_encodings/encodings")?;
    let n_mels = *model.get("encoder/conv1/weight")?.dims.get(1).ok_or_else(|| ReadError("encoder/conv1/weight is not 3-D".into()))?;
    Ok(Hparams {
        n_vocab,
        n_audio_ctx,
        n_audio_state,
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: count_layers(model, "encoder"),
        n_text_ctx,
        n_text_state,
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: count_layers(model, "decoder"),
        n_mels,
        ftype: 1,
    })
}

/// The CTranslate2 variable a ggml tensor comes from, and which of its rows (for split
/// fused projections).
fn source(name: &str, d: usize) -> Result<(String, Option<Range<usize>>), ReadError> {
    let fixed = match name {
        "encoder.positional_embedding" => Some("encoder/position_encodings/encodings".to_string()),
        "decoder.positional_embedding" => Some("decoder/position_encodings/encodings".to_string()),
        "decoder.token_embedding.weight" => Some("decoder/embeddings/weight".to_string()),
        _ => None,
    };
    if let Some(f) = fixed {
        return Ok((f, None));
    }
    let unknown = || ReadError(format!("no CTranslate2 source for tensor {name}"));
    let (path, param) = name.rsplit_once('.').ok_or_else(unknown)?;
    let norm_param = if param == "weight" { "gamma" } else { "beta" };
    let parts: Vec<&str> = path.split('.').collect();
    let (var, rows) = match parts[..] {
        [stack, conv] if conv.starts_with("conv") => (format!("{stack}/{conv}/{param}"), None),
        ["encoder", "ln_post"] => (format!("encoder/layer_norm/{norm_param}"), None),
        ["decoder", "ln"] => (format!("decoder/layer_norm/{norm_param}"), None),
        [stack, "blocks", i, ref rest @ ..] => {
            let l = format!("{stack}/layer_{i}");
            match rest {
                ["attn_ln"] => (format!("{l}/self_attention/layer_norm/{norm_param}"), None),
                ["cross_attn_ln"] => (format!("{l}/attention/layer_norm/{norm_param}"), None),
                ["mlp_ln"] => (format!("{l}/ffn/layer_norm/{norm_param}"), None),
                ["mlp", "0"] => (format!("{l}/ffn/linear_0/{param}"), None),
                ["mlp", "2"] => (format!("{l}/ffn/linear_1/{param}"), None),
                ["attn", "query"] => (format!("{l}/self_attention/linear_0/{param}"), Some(0..d)),
                ["attn", "key"] => (format!("{l}/self_attention/linear_0/{param}"), Some(d..2 * d)),
                ["attn", "value"] => (format!("{l}/self_attention/linear_0/{param}"), Some(2 * d..3 * d)),
                ["attn", "out"] => (format!("{l}/self_attention/linear_1/{param}"), None),
                ["cross_attn", "query"] => (format!("{l}/attention/linear_0/{param}"), None),
                ["cross_attn", "key"] => (format!("{l}/attention/linear_1/{param}"), Some(0..d)),
                ["cross_attn", "value"] => (format!("{l}/attention/linear_1/{param}"), Some(d..2 * d)),
                ["cross_attn", "out"] => (format!("{l}/attention/linear_2/{param}"), None),
                _ => return Err(unknown()),
            }
        }
        _ => return Err(unknown()),
    };
    Ok((var, rows))
}

/// The bytes of tensor `spec`: its source rows, converted to `spec.ty`.
fn tensor_data(model: &Ct2Model, spec: &TensorSpec, h: &Hparams) -> Result<Vec<u8>, ReadError> {
    let d = if spec.name.starts_with("encoder") { h.n_audio_state } else { h.n_text_state };
    let (var_name, rows) = source(&spec.name, d)?;
    let var = model.get(&var_name)?;
    let row_elems: usize = var.dims.iter().skip(1).product();
    let total_rows = var.dims.first().copied().unwrap_or(1);
    let rows = rows.unwrap_or(0..total_rows);
    if rows.end > total_rows || rows.len() * row_elems != spec.elements() {
        return Err(ReadError(format!(
            "{var_name} of shape {:?} cannot give {} (rows {rows:?}, {} elements)",
            var.dims,
            spec.name,
            spec.elements()
        )));
    }
    let size = var.ty.size();
    let raw = &var.data[rows.start * row_elems * size..rows.end * row_elems * size];
    let values = raw.chunks_exact(size).map(|b| match var.ty {
        Ct2Type::F32 => Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        Ct2Type::F16 => Ok(f16::from_le_bytes([b[0], b[1]]).to_f32()),
        other => Err(ReadError(format!("{var_name} is stored as {other:?}; only f32 and f16 exports are supported"))),
    });
    let mut out = Vec::with_capacity(spec.elements() * spec.ty.size());
    for v in values {
        match spec.ty {
            TensorType::F32 => out.extend_from_slice(&v?.to_le_bytes()),
            TensorType::F16 => out.extend_from_slice(&f16::from_f32(v?).to_le_bytes()),
        }
    }
    Ok(out)
}

/// GPT-2's byte ↔ printable-character table, inverted: character → byte.
fn unicode_to_byte() -> HashMap<char, u8> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                b as u32
            } else {
                next += 1;
                next - 1
            };
            (char::from_u32(c).expect("valid code point"), b)
        })
        .collect()
}

/// Token bytes for ids `0..eot` from a Hugging Face `tokenizer.json` (byte-level BPE).
fn vocabulary(json: &[u8]) -> Result<Vec<Vec<u8>>, ReadError> {
    #[derive(serde::Deserialize)]
    struct Tokenizer {
        model: Model,
        #[serde(default)]
        added_tokens: Vec<Added>,
    }
    #[derive(serde::Deserialize)]
    struct Model {
        vocab: HashMap<String, u32>,
    }
    #[derive(serde::Deserialize)]
    struct Added {
        id: u32,
        content: String,
    }
    let t: Tokenizer = serde_json::from_slice(json).map_err(|e| ReadError(format!("not a tokenizer.json with a BPE vocabulary: {e}")))?;
    let eot = t
        .added_tokens
        .iter()
        .find(|a| a.content == "<|endoftext|>")
        .map(|a| a.id)
        .or_else(|| t.model.vocab.get("<|endoftext|>").copied())
        .ok_or_else(|| ReadError("the vocabulary has no <|endoftext|> token".into()))? as usize;
    // Every id below <|endoftext|> needs a token, so its id cannot exceed the vocabulary's size
    // (checked before sizing anything by it).
    if eot > t.model.vocab.len() {
        return Err(ReadError(format!("<|endoftext|> has id {eot}, beyond the {}-token vocabulary", t.model.vocab.len())));
    }
    let bytes_of = unicode_to_byte();
    let mut tokens: Vec<Option<Vec<u8>>> = vec![None; eot];
    for (text, &id) in &t.model.vocab {
        if let Some(slot) = tokens.get_mut(id as usize) {
            let b: Option<Vec<u8>> = text.chars().map(|c| bytes_of.get(&c).copied()).collect();
            *slot = Some(b.ok_or_else(|| ReadError(format!("token {id} ({text:?}) is not byte-level BPE")))?);
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.ok_or_else(|| ReadError(format!("the vocabulary has no token with id {id}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_characters_map_back_to_bytes() {
        let m = unicode_to_byte();
        assert_eq!(m.len(), 256);
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'a'], b'a');
    }

    #[test]
    fn fused_projections_split_by_rows() {
        assert_eq!(source("decoder.blocks.2.cross_attn.value.weight", 384).unwrap(), ("decoder/layer_2/attention/linear_1/weight".into(), Some(384..768)));
        assert_eq!(source("encoder.blocks.0.attn.key.weight", 384).unwrap(), ("encoder/layer_0/self_attention/linear_0/weight".into(), Some(384..768)));
        assert_eq!(source("decoder.blocks.0.attn.out.bias", 384).unwrap(), ("decoder/layer_0/self_attention/linear_1/bias".into(), None));
        assert_eq!(source("encoder.ln_post.bias", 384).unwrap(), ("encoder/layer_norm/beta".into(), None));
    }
}
