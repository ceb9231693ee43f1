//! The ggml Whisper file that whisper.cpp loads: hyper-parameters, mel filters, vocabulary and
//! named tensors. [`GgmlWhisper::parse`] checks a file against everything whisper.cpp assumes
//! (every tensor present with its exact shape and type, nothing unknown, nothing truncated), so a
//! bad file gets a clear error here instead of undefined behaviour inside whisper.cpp.

use std::io::Write;

use super::bytes::{ReadError, Reader};

/// `ggml` in ASCII, little-endian.
pub const MAGIC: u32 = 0x6767_6d6c;
/// Frequency bins of the mel filter bank as whisper.cpp stores it (`n_fft` in the file).
pub const FILTER_BINS: usize = 201;

/// Model dimensions, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    /// Vocabulary size (token embedding rows).
    pub n_vocab: usize,
    /// Encoder positions (1500 = 30 s).
    pub n_audio_ctx: usize,
    /// Encoder width.
    pub n_audio_state: usize,
    /// Encoder attention heads.
    pub n_audio_head: usize,
    /// Encoder layers.
    pub n_audio_layer: usize,
    /// Decoder positions.
    pub n_text_ctx: usize,
    /// Decoder width.
    pub n_text_state: usize,
    /// Decoder attention heads.
    pub n_text_head: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
    /// Mel bins of the input.
    pub n_mels: usize,
    /// Storage of the matrices: 0 f32, 1 f16.
    pub ftype: usize,
}

impl Hparams {
    fn fields(&self) -> [usize; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }
}

/// Element type of a ggml tensor in a Whisper file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
}

impl TensorType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }

    fn code(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
        }
    }
}

/// A tensor whisper.cpp requires: name, ggml shape (`ne`, innermost first) and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name, e.g. `encoder.blocks.0.attn.query.weight`.
    pub name: String,
    /// ggml dimensions, innermost first (the reverse of the numpy shape).
    pub ne: Vec<usize>,
    /// Element type.
    pub ty: TensorType,
}

impl TensorSpec {
    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.ne.iter().product()
    }
}

/// Every tensor of a Whisper model with dimensions `h`, in a fixed order.
pub fn expected_tensors(h: &Hparams) -> Vec<TensorSpec> {
    let wtype = if h.ftype == 1 { TensorType::F16 } else { TensorType::F32 };
    let mut out = Vec::new();
    let mut add = |name: String, ne: &[usize], ty| out.push(TensorSpec { name, ne: ne.to_vec(), ty });
    let (ad, td) = (h.n_audio_state, h.n_text_state);
    add("encoder.positional_embedding".into(), &[ad, h.n_audio_ctx], TensorType::F32);
    add("encoder.conv1.weight".into(), &[3, h.n_mels, ad], wtype);
    add("encoder.conv1.bias".into(), &[1, ad], TensorType::F32);
    add("encoder.conv2.weight".into(), &[3, ad, ad], wtype);
    add("encoder.conv2.bias".into(), &[1, ad], TensorType::F32);
    add("encoder.ln_post.weight".into(), &[ad], TensorType::F32);
    add("encoder.ln_post.bias".into(), &[ad], TensorType::F32);
    add("decoder.positional_embedding".into(), &[td, h.n_text_ctx], TensorType::F32);
    add("decoder.token_embedding.weight".into(), &[td, h.n_vocab], wtype);
    add("decoder.ln.weight".into(), &[td], TensorType::F32);
    add("decoder.ln.bias".into(), &[td], TensorType::F32);
    let stacks = [
        ("encoder", h.n_audio_layer, ad, &["attn"][..], &["mlp_ln", "attn_ln"][..]),
        ("decoder", h.n_text_layer, td, &["attn", "cross_attn"][..], &["mlp_ln", "attn_ln", "cross_attn_ln"][..]),
    ];
    for (stack, layers, d, attns, norms) in stacks {
        for i in 0..layers {
            let p = format!("{stack}.blocks.{i}");
            for ln in norms {
                add(format!("{p}.{ln}.weight"), &[d], TensorType::F32);
                add(format!("{p}.{ln}.bias"), &[d], TensorType::F32);
            }
            add(format!("{p}.mlp.0.weight"), &[d, 4 * d], wtype);
            add(format!("{p}.mlp.0.bias"), &[4 * d], TensorType::F32);
            add(format!("{p}.mlp.2.weight"), &[4 * d, d], wtype);
            add(format!("{p}.mlp.2.bias"), &[d], TensorType::F32);
            for attn in attns {
                for proj in ["query", "key", "value", "out"] {
                    add(format!("{p}.{attn}.{proj}.weight"), &[d, d], wtype);
                    if proj != "key" {
                        add(format!("{p}.{attn}.{proj}.bias"), &[d], TensorType::F32);
                    }
                }
            }
        }
    }
    out
}

/// Writes a ggml Whisper file piece by piece, in file order.
pub struct GgmlWriter<W: Write> {
    out: W,
}

impl<W: Write> GgmlWriter<W> {
    /// Writes the magic and hyper-parameters.
    pub fn new(mut out: W, h: &Hparams) -> std::io::Result<Self> {
        out.write_all(&MAGIC.to_le_bytes())?;
        for v in h.fields() {
            out.write_all(&(v as i32).to_le_bytes())?;
        }
        Ok(Self { out })
    }

    /// Writes the mel filter bank (`n_mels` × [`FILTER_BINS`]).
    pub fn filters(&mut self, n_mels: usize, filters: &[f32]) -> std::io::Result<()> {
        self.out.write_all(&(n_mels as i32).to_le_bytes())?;
        self.out.write_all(&(FILTER_BINS as i32).to_le_bytes())?;
        for v in filters {
            self.out.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }

    /// Writes the vocabulary: token `i`'s bytes at index `i`.
    pub fn vocab(&mut self, tokens: &[Vec<u8>]) -> std::io::Result<()> {
        self.out.write_all(&(tokens.len() as i32).to_le_bytes())?;
        for t in tokens {
            self.out.write_all(&(t.len() as u32).to_le_bytes())?;
            self.out.write_all(t)?;
        }
        Ok(())
    }

    /// Writes one tensor; `data` holds its elements in `spec.ty`, C order.
    pub fn tensor(&mut self, spec: &TensorSpec, data: &[u8]) -> std::io::Result<()> {
        debug_assert_eq!(data.len(), spec.elements() * spec.ty.size());
        self.out.write_all(&(spec.ne.len() as i32).to_le_bytes())?;
        self.out.write_all(&(spec.name.len() as i32).to_le_bytes())?;
        self.out.write_all(&spec.ty.code().to_le_bytes())?;
        for &n in &spec.ne {
            self.out.write_all(&(n as i32).to_le_bytes())?;
        }
        self.out.write_all(spec.name.as_bytes())?;
        self.out.write_all(data)
    }

    /// The underlying writer.
    pub fn finish(self) -> W {
        self.out
    }
}

/// A checked view of a ggml Whisper file.
#[derive(Debug)]
pub struct GgmlWhisper<'a> {
    /// Dimensions.
    pub hparams: Hparams,
    /// Mel filters, `n_mels` × [`FILTER_BINS`].
    pub filters: Vec<f32>,
    /// Token bytes by id.
    pub vocab: Vec<&'a [u8]>,
    /// Tensors in file order with their data.
    pub tensors: Vec<(TensorSpec, &'a [u8])>,
}

/// Largest dimension accepted anywhere in the header (generous for every Whisper size).
const MAX_DIM: usize = 1 << 20;

impl<'a> GgmlWhisper<'a> {
    /// Parses and checks `data`, a whole ggml Whisper file.
    pub fn parse(data: &'a [u8]) -> Result<Self, ReadError> {
        let mut r = Reader::new(data);
        let magic = r.u32("the magic number")?;
        if magic != MAGIC {
            return Err(ReadError(format!("not a ggml Whisper model (magic {magic:#010x}, expected {MAGIC:#010x})")));
        }
        let mut f = [0usize; 11];
        for (v, name) in f.iter_mut().zip(["n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels", "ftype"]) {
            *v = r.count(name, MAX_DIM)?;
        }
        let h = Hparams {
            n_vocab: f[0],
            n_audio_ctx: f[1],
            n_audio_state: f[2],
            n_audio_head: f[3],
            n_audio_layer: f[4],
            n_text_ctx: f[5],
            n_text_state: f[6],
            n_text_head: f[7],
            n_text_layer: f[8],
            n_mels: f[9],
            ftype: f[10],
        };
        if h.ftype > 1 {
            return Err(ReadError(format!("ftype {} (quantised Whisper files) is not supported; use an f16 or f32 model", h.ftype)));
        }
        let heads_ok = h.n_audio_head > 0 && h.n_text_head > 0 && h.n_audio_state % h.n_audio_head == 0 && h.n_text_state % h.n_text_head == 0;
        if !heads_ok || h.n_audio_layer > 64 || h.n_text_layer > 64 {
            return Err(ReadError(format!("implausible dimensions {h:?}")));
        }
        let n_mel = r.count("the filter count", MAX_DIM)?;
        let bins = r.count("the filter width", MAX_DIM)?;
        if n_mel != h.n_mels || bins != FILTER_BINS {
            return Err(ReadError(format!("mel filters are {n_mel}x{bins}, expected {}x{FILTER_BINS}", h.n_mels)));
        }
        let raw = r.bytes(n_mel * bins * 4, "the mel filters")?;
        let filters = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let n_tokens = r.count("the vocabulary size", h.n_vocab)?;
        let mut vocab = Vec::with_capacity(n_tokens);
        for _ in 0..n_tokens {
            let len = r.u32("a token length")? as usize;
            vocab.push(r.bytes(len, "a token")?);
        }
        let mut wanted: std::collections::HashMap<String, TensorSpec> =
            expected_tensors(&h).into_iter().map(|t| (t.name.clone(), t)).collect();
        let mut tensors = Vec::with_capacity(wanted.len());
        while !r.at_end() {
            let at = r.pos();
            let n_dims = r.count("a tensor's rank", 4)?;
            let name_len = r.count("a tensor's name length", 256)?;
            let code = r.i32("a tensor's type")?;
            let ne = (0..n_dims).map(|_| r.count("a tensor dimension", MAX_DIM)).collect::<Result<Vec<_>, _>>()?;
            let name = String::from_utf8_lossy(r.bytes(name_len, "a tensor name")?).into_owned();
            let spec = wanted.remove(&name).ok_or_else(|| ReadError(format!("unexpected or repeated tensor '{name}' at offset {at}")))?;
            if spec.ne != ne || spec.ty.code() != code {
                return Err(ReadError(format!(
                    "tensor '{name}' is {ne:?} of type {code}; whisper.cpp needs {:?} of type {}",
                    spec.ne,
                    spec.ty.code()
                )));
            }
            let data = r.bytes(spec.elements() * spec.ty.size(), &format!("tensor '{name}'"))?;
            tensors.push((spec, data));
        }
        if let Some(missing) = wanted.keys().min() {
            return Err(ReadError(format!("the file lacks {} tensors, e.g. '{missing}'", wanted.len())));
        }
        Ok(Self { hparams: h, filters, vocab, tensors })
    }
}
