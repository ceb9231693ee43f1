//! The model's tokenizer, built from the GGUF vocabulary: byte-level BPE with the `tokenizers`
//! crate, SentencePiece as llama.cpp runs it ([`crate::spm`]); and a streaming detokenizer that
//! only ever emits complete UTF-8.

use std::collections::HashMap;

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::error::{Error, Result};
use crate::gguf::{Gguf, Value};
use crate::spm::Spm;

/// GGUF token types (`tokenizer.ggml.token_type`).
const TOKEN_UNKNOWN: i64 = 2;
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;
const TOKEN_BYTE: i64 = 6;

/// The GPT-2 pre-tokenizer regex, shared by most byte-level BPE models.
const GPT2_SPLIT: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer regex.
const LLAMA3_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's pre-tokenizer regex.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How text becomes tokens.
enum Encoder {
    /// Byte-level BPE (`gpt2` vocabularies), special tokens among its added tokens.
    Bpe(Box<tokenizers::Tokenizer>),
    /// SentencePiece (`llama` vocabularies).
    Spm(Box<Spm>),
}

/// A tokenizer plus what generation needs to know about special tokens.
pub struct Tokenizer {
    encoder: Encoder,
    /// The bytes each token stands for when shown to the user (control tokens: none).
    pieces: Vec<Vec<u8>>,
    /// Text of each token as written in the vocabulary (for templates).
    texts: Vec<String>,
    /// End-of-generation tokens.
    eog: Vec<u32>,
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
    /// Whether raw prompts start with BOS.
    pub add_bos: bool,
}

/// GPT-2's reversible byte → printable character map, inverted.
fn byte_decoder() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut map: HashMap<char, u8> = printable.iter().map(|&b| (char::from_u32(b).unwrap(), b as u8)).collect();
    let mut extra = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            printable.push(b);
            map.insert(char::from_u32(256 + extra).unwrap(), b as u8);
            extra += 1;
        }
    }
    map
}

fn split(regex: &str) -> Result<PreTokenizerWrapper> {
    let pattern = SplitPattern::Regex(regex.to_string());
    Ok(Split::new(pattern, SplitDelimiterBehavior::Isolated, false).map_err(|e| Error::Tokenizer(e.to_string()))?.into())
}

impl Tokenizer {
    /// Builds the tokenizer described by the GGUF metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let tokens: Vec<String> = strings(g, "tokenizer.ggml.tokens")?;
        let types: Vec<i64> = match g.array("tokenizer.ggml.token_type") {
            Some(a) => a.iter().map(|v| if let Value::Int(i) = v { *i } else { 1 }).collect(),
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(Error::Model(format!(
                "the vocabulary has {} tokens but {} token types (tokenizer.ggml.token_type)",
                tokens.len(),
                types.len()
            )));
        }
        let model = g.str("tokenizer.ggml.model").unwrap_or("gpt2");
        let pre = g.str("tokenizer.ggml.pre").unwrap_or("default");
        let vocab: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let token_id = |key: &str| g.int(key).and_then(|i| u32::try_from(i).ok()).filter(|&i| (i as usize) < tokens.len());

        let name = g.str("general.name").unwrap_or("");
        let rstrip = |token: &str| strips_right(name, token);
        let (encoder, pieces, default_bos) = match model {
            "gpt2" => {
                let merges = strings(g, "tokenizer.ggml.merges")?
                    .into_iter()
                    .map(|m| {
                        m.split_once(' ')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .ok_or_else(|| Error::Tokenizer(format!("malformed merge '{m}'")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vocab>(), merges)
                    .ignore_merges(matches!(pre, "llama-bpe" | "llama3"))
                    .build()
                    .map_err(|e| Error::Tokenizer(e.to_string()))?;
                let byte_level = ByteLevel::new(false, false, false);
                let pre_tokenizer: PreTokenizerWrapper = match pre {
                    "default" | "gpt2" | "gpt-2" => ByteLevel::new(false, false, true).into(),
                    "smollm" | "starcoder" | "refact" | "codeshell" => {
                        Sequence::new(vec![Digits::new(true).into(), split(GPT2_SPLIT)?, byte_level.into()]).into()
                    }
                    "llama-bpe" | "llama3" | "smaug-bpe" => Sequence::new(vec![split(LLAMA3_SPLIT)?, byte_level.into()]).into(),
                    "qwen2" => Sequence::new(vec![split(QWEN2_SPLIT)?, byte_level.into()]).into(),
                    other => {
                        return Err(Error::Unsupported(format!(
                            "pre-tokenizer '{other}' (tokenizer.ggml.pre); supported: gpt2, smollm, starcoder, llama-bpe, qwen2"
                        )))
                    }
                };
                let mut t = tokenizers::Tokenizer::new(bpe);
                t.with_pre_tokenizer(Some(pre_tokenizer));
                let specials: Vec<AddedToken> = tokens
                    .iter()
                    .zip(&types)
                    .filter(|(_, ty)| matches!(**ty, TOKEN_CONTROL | TOKEN_USER_DEFINED))
                    .map(|(t, _)| AddedToken::from(t.clone(), true).rstrip(rstrip(t)))
                    .collect();
                t.add_special_tokens(specials).map_err(|e| Error::Tokenizer(e.to_string()))?;
                let decoder = byte_decoder();
                let pieces = tokens
                    .iter()
                    .zip(&types)
                    .map(|(t, ty)| match *ty {
                        TOKEN_CONTROL => Vec::new(),
                        TOKEN_USER_DEFINED => t.as_bytes().to_vec(),
                        _ => t.chars().map(|c| decoder.get(&c).copied().unwrap_or(b'?')).collect(),
                    })
                    .collect();
                (Encoder::Bpe(Box::new(t)), pieces, false)
            }
            "llama" => {
                let scores: Vec<f32> = match g.array("tokenizer.ggml.scores") {
                    Some(a) => a.iter().map(|v| if let Value::Float(f) = v { *f as f32 } else { 0.0 }).collect(),
                    None => return Err(Error::Model("SentencePiece vocabulary without tokenizer.ggml.scores".into())),
                };
                let special = |i: usize| match types[i] {
                    TOKEN_CONTROL | TOKEN_UNKNOWN => Some(true),
                    TOKEN_USER_DEFINED => Some(false),
                    _ => None,
                };
                let unknown = token_id("tokenizer.ggml.unknown_token_id").unwrap_or(0);
                let space_prefix = g.bool("tokenizer.ggml.add_space_prefix").unwrap_or(true);
                let spm = Spm::new(&tokens, vocab, scores, special, rstrip, unknown, space_prefix);
                let pieces = tokens
                    .iter()
                    .zip(&types)
                    .map(|(t, ty)| match *ty {
                        TOKEN_CONTROL => Vec::new(),
                        TOKEN_BYTE => byte_token(t).map(|b| vec![b]).unwrap_or_default(),
                        _ => t.replace('▁', " ").into_bytes(),
                    })
                    .collect();
                (Encoder::Spm(Box::new(spm)), pieces, true)
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "tokenizer model '{other}'; Murmur supports 'gpt2' (byte-level BPE) and 'llama' (SentencePiece)"
                )))
            }
        };

        let bos = token_id("tokenizer.ggml.bos_token_id");
        let eos = token_id("tokenizer.ggml.eos_token_id");
        let mut eog: Vec<u32> = [eos, token_id("tokenizer.ggml.eot_token_id"), token_id("tokenizer.ggml.eom_token_id")]
            .into_iter()
            .flatten()
            .collect();
        const EOG_TEXTS: [&str; 7] =
            ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|end_of_text|>", "</s>"];
        for (i, t) in tokens.iter().enumerate() {
            if types[i] == TOKEN_CONTROL && EOG_TEXTS.contains(&t.as_str()) && !eog.contains(&(i as u32)) {
                eog.push(i as u32);
            }
        }
        Ok(Self {
            encoder,
            pieces,
            texts: tokens,
            eog,
            bos,
            eos,
            add_bos: g.bool("tokenizer.ggml.add_bos_token").unwrap_or(default_bos),
        })
    }

    /// Token ids of `text`. With `parse_special`, special-token text becomes those tokens.
    pub fn encode(&mut self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        match &mut self.encoder {
            Encoder::Bpe(t) => {
                t.set_encode_special_tokens(!parse_special);
                let enc = t.encode_fast(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
                Ok(enc.get_ids().to_vec())
            }
            Encoder::Spm(spm) => Ok(spm.encode(text, parse_special)),
        }
    }

    /// Whether `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The bytes token `id` contributes to the shown text.
    pub fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// The vocabulary text of a token (e.g. `<|im_end|>`), for chat templates.
    pub fn text(&self, id: Option<u32>) -> &str {
        id.and_then(|i| self.texts.get(i as usize)).map_or("", String::as_str)
    }

    /// The end-of-generation tokens.
    pub fn eog(&self) -> &[u32] {
        &self.eog
    }

    /// Each token's bytes for a grammar engine: its piece, or for a control token (which has
    /// none) its text behind the 0xFF byte that marks special tokens, so no text can match it.
    pub fn byte_words(&self) -> Vec<Vec<u8>> {
        self.pieces
            .iter()
            .zip(&self.texts)
            .map(|(piece, text)| match piece.is_empty() {
                false => piece.clone(),
                true => std::iter::once(0xFF).chain(text.bytes()).collect(),
            })
            .collect()
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.texts.len()
    }
}

/// Whether whitespace right after special token `token` is dropped: llama.cpp's rule for files
/// whose `general.name` names Phi-3, for all but `<unk>`, `<s>` and `<|endoftext|>`.
pub fn strips_right(name: &str, token: &str) -> bool {
    let name = name.to_lowercase();
    (name.contains("phi-3") || name.contains("phi3")) && !["<unk>", "<s>", "<|endoftext|>"].contains(&token)
}

fn strings(g: &Gguf, key: &str) -> Result<Vec<String>> {
    let arr = g.array(key).ok_or_else(|| Error::Model(format!("the model's metadata lacks '{key}'")))?;
    arr.iter()
        .map(|v| match v {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(Error::Model(format!("'{key}' holds a non-string"))),
        })
        .collect()
}

fn byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// Turns token bytes into text, holding back an unfinished UTF-8 sequence until it completes.
#[derive(Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds `bytes` and appends the newly completed text (possibly none) to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"));
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                        // Invalid bytes: show a replacement character and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}
