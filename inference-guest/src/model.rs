//! The decoder-only transformers Murmur runs (llama and its kin, gemma3), driven by GGUF
//! metadata, expressed as host kernel calls.

use crate::bindings::murmur::llm::compute::{self, Candidate, Nonlinearity, RopeStyle, Tensor};
use crate::error::{Error, Result};
use crate::gguf::{block_layout, Gguf, TensorInfo, Value};

/// Hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct Config {
    /// `general.architecture`.
    pub arch: String,
    /// Transformer blocks.
    pub layers: u32,
    /// Embedding width.
    pub dim: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads.
    pub kv_heads: u32,
    /// Width of one head (`attention.key_length`, or the width over the heads).
    pub head_dim: u32,
    /// Hidden width of the feed-forward block.
    pub ffn: u32,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// RoPE frequency base.
    pub rope_base: f32,
    /// Context length the model was trained for.
    pub train_context: u32,
    /// Rows of the output matrix.
    pub vocab: u32,
    /// How rotary embedding pairs the dimensions of a head.
    pub rope_style: RopeStyle,
    /// The feed-forward block's gate.
    pub act: Nonlinearity,
    /// What the embedding is multiplied by (gemma3: the square root of the width).
    pub embed_scale: f32,
    /// Each block's attention and feed-forward outputs are normed before they join the residual
    /// (gemma3's `post_attention_norm` and `post_ffw_norm`).
    pub post_norms: bool,
    /// The sliding-window layers, where the architecture has them.
    pub sliding: Option<Sliding>,
}

/// Layers that attend only to the last `window` positions, with their own rope base
/// (gemma3: five of every six).
#[derive(Debug, Clone)]
pub struct Sliding {
    /// Positions a query sees, its own among them.
    pub window: u32,
    /// Which layers slide.
    pub layers: Vec<bool>,
    /// The rotation's frequency base on those layers.
    pub rope_base: f32,
}

/// The architectures Murmur runs. Their GGUF tensors follow llama's names; how each rotates:
/// llama's GGUF export permutes q/k into adjacent pairs, the others keep the NeoX halves.
/// Optional tensors are loaded where present: qwen2's q/k/v biases, the per-head q/k norms of
/// gemma3 and qwen3, phi3's fused q/k/v and gate/up tensors.
const FAMILIES: [(&str, RopeStyle); 6] = [
    ("llama", RopeStyle::Interleaved),
    ("mistral", RopeStyle::Interleaved),
    ("qwen2", RopeStyle::Halves),
    ("qwen3", RopeStyle::Halves),
    ("gemma3", RopeStyle::Halves),
    ("phi3", RopeStyle::Halves),
];

impl Config {
    /// Reads the hyper-parameters, rejecting architectures Murmur cannot run.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.str("general.architecture").unwrap_or("").to_string();
        let Some(&(_, rope_style)) = FAMILIES.iter().find(|(a, _)| *a == arch) else {
            return Err(Error::Unsupported(format!(
                "architecture '{arch}'; Murmur runs llama (SmolLM2, TinyLlama, Llama 2/3), mistral, qwen2 (Qwen2, Qwen2.5), \
                 qwen3, gemma3 and phi3 (Phi-3, Phi-4-mini) models"
            )));
        };
        let gemma = arch == "gemma3";
        let key = |k: &str| format!("{arch}.{k}");
        let dim = g.req_u32(&key("embedding_length"))?;
        let heads = g.req_u32(&key("attention.head_count"))?;
        let kv_heads =
            g.int(&key("attention.head_count_kv")).map_or(Ok(heads), |_| g.req_u32(&key("attention.head_count_kv")))?;
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(Error::Model(format!("inconsistent heads: {heads} heads, {kv_heads} KV heads")));
        }
        let head_dim = match g.int(&key("attention.key_length")) {
            Some(_) => g.req_u32(&key("attention.key_length"))?,
            None if dim % heads == 0 => dim / heads,
            None => return Err(Error::Model(format!("width {dim} does not divide into {heads} heads"))),
        };
        let value_dim = g.int(&key("attention.value_length")).unwrap_or(head_dim as i64);
        if value_dim != head_dim as i64 {
            return Err(Error::Unsupported(format!("values {value_dim} wide against keys {head_dim} wide")));
        }
        let rope_dims = g.int(&key("rope.dimension_count")).unwrap_or(head_dim as i64);
        if rope_dims != head_dim as i64 {
            return Err(Error::Unsupported(format!("partial rotary embedding ({rope_dims} of {head_dim} dimensions)")));
        }
        // Llama 3's scaling is the `rope_freqs` tensor, which the rotation divides by; other
        // schemes change the rotation itself. Phi-3's long-context models carry LongRoPE's
        // factors (and scale the rotated values), which Murmur does not implement.
        if ["rope_factors_long.weight", "rope_factors_short.weight"].iter().any(|t| g.tensors.contains_key(*t)) {
            return Err(Error::Unsupported("'longrope' rope scaling (the long-context Phi-3 models)".into()));
        }
        match g.str(&key("rope.scaling.type")).unwrap_or("none") {
            "none" | "llama3" => {}
            other => {
                let factor = g.float(&key("rope.scaling.factor")).unwrap_or(1.0);
                if factor != 1.0 {
                    return Err(Error::Unsupported(format!("'{other}' rope scaling (factor {factor})")));
                }
            }
        }
        let embd = tensor(g, "token_embd.weight")?;
        let layers = g.req_u32(&key("block_count"))?;
        let sliding = match g.int(&key("attention.sliding_window")).filter(|_| gemma) {
            Some(w) if w > 0 => Some(Sliding {
                window: g.req_u32(&key("attention.sliding_window"))?,
                layers: sliding_layers(g, &key("attention.sliding_window_pattern"), layers)?,
                rope_base: g.float(&key("rope.freq_base_swa")).unwrap_or(10_000.0) as f32,
            }),
            _ => None,
        };
        Ok(Self {
            layers,
            dim,
            heads,
            kv_heads,
            head_dim,
            ffn: g.req_u32(&key("feed_forward_length"))?,
            eps: g.float(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5) as f32,
            rope_base: g.float(&key("rope.freq_base")).unwrap_or(10_000.0) as f32,
            train_context: g.req_u32(&key("context_length"))?,
            vocab: embd.dims.get(1).copied().unwrap_or(0) as u32,
            rope_style,
            act: if gemma { Nonlinearity::GeluTanh } else { Nonlinearity::Silu },
            embed_scale: if gemma { (dim as f32).sqrt() } else { 1.0 },
            post_norms: gemma,
            sliding,
            arch,
        })
    }

    /// Width of the queries (and of the attention's output): all heads.
    fn q_dim(&self) -> u32 {
        self.heads * self.head_dim
    }
}

/// Which of `layers` slide: the pattern key's list of flags, or its period `n` (default 6),
/// where every `n`-th layer sees the whole context (llama.cpp's reading of gemma3).
fn sliding_layers(g: &Gguf, key: &str, layers: u32) -> Result<Vec<bool>> {
    if let Some(flags) = g.array(key) {
        let flags: Vec<bool> = flags.iter().map(|v| matches!(v, Value::Bool(true))).collect();
        if flags.len() != layers as usize {
            return Err(Error::Model(format!("'{key}' has {} flags for {layers} layers", flags.len())));
        }
        return Ok(flags);
    }
    let period = g.int(key).unwrap_or(6).max(0) as u32;
    Ok((0..layers).map(|i| period == 0 || i % period < period - 1).collect())
}

fn tensor<'a>(g: &'a Gguf, name: &str) -> Result<&'a TensorInfo> {
    g.tensors.get(name).ok_or_else(|| Error::Model(format!("the model lacks tensor '{name}'")))
}

/// A weight handle for tensor `name`, checked to be `rows` x `cols`.
fn weight(g: &Gguf, name: &str, rows: u32, cols: u32) -> Result<Tensor> {
    Ok(weights(g, name, &[rows], cols)?.remove(0))
}

/// Weight handles for consecutive row ranges of tensor `name` (`heights` rows each, `cols` wide,
/// all of its rows between them): the parts of a fused tensor, such as phi3's q/k/v.
fn weights(g: &Gguf, name: &str, heights: &[u32], cols: u32) -> Result<Vec<Tensor>> {
    let info = tensor(g, name)?;
    let (c, r) = (info.dims[0], info.dims.get(1).copied().unwrap_or(1));
    let rows: u64 = heights.iter().map(|&h| h as u64).sum();
    if (r, c) != (rows, cols as u64) || info.dims.iter().skip(2).any(|&d| d != 1) {
        return Err(Error::Model(format!("tensor '{name}' is {:?}, expected [{cols}, {rows}]", info.dims)));
    }
    let (block_bytes, block_elems) = block_layout(info.dtype);
    let row_bytes = cols as u64 / block_elems * block_bytes;
    let mut offset = info.offset;
    heights
        .iter()
        .map(|&h| {
            let w = compute::weight(info.dtype, h, cols, offset)?;
            offset += h as u64 * row_bytes;
            Ok(w)
        })
        .collect()
}

/// The parts of a fused tensor, `N` of them.
fn parts<const N: usize>(v: Vec<Tensor>) -> [Tensor; N] {
    v.try_into().unwrap_or_else(|_| unreachable!("one handle per height"))
}

struct Layer {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    /// Biases of q, k and v, where the architecture has them.
    bias: Option<[Tensor; 3]>,
    /// Per-head norms of q and k, where the architecture has them.
    qk_norm: Option<[Tensor; 2]>,
    wo: Tensor,
    ffn_norm: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    /// Norms of the attention and feed-forward outputs, where the architecture has them.
    post_norms: Option<[Tensor; 2]>,
    /// Positions this layer's queries see, where it slides.
    window: Option<u32>,
    /// This layer's rope base.
    rope_base: f32,
    k_cache: Tensor,
    v_cache: Tensor,
}

/// Activation buffers, allocated once for `batch` tokens and reused for every step.
struct Scratch {
    x: Tensor,
    xb: Tensor,
    q: Tensor,
    k: Tensor,
    /// q and k before their per-head norms, where the model has them.
    raw_qk: Option<[Tensor; 2]>,
    v: Tensor,
    att: Tensor,
    gate: Tensor,
    up: Tensor,
    act: Tensor,
    last: Tensor,
    last_norm: Tensor,
    logits: Tensor,
}

/// A loaded model with its KV cache.
pub struct Model {
    /// Hyper-parameters.
    pub cfg: Config,
    /// KV cache rows.
    pub context: u32,
    batch: u32,
    embd: Tensor,
    out_norm: Tensor,
    output: Tensor,
    /// Divisors of the rotation's frequencies (`rope_freqs`, Llama 3), where the model has them.
    rope_factors: Option<Tensor>,
    layers: Vec<Layer>,
    s: Scratch,
}

impl Model {
    /// Binds the model's weights and allocates a KV cache of `context` tokens and scratch
    /// for prompt chunks of `batch` tokens.
    pub fn load(g: &Gguf, cfg: Config, context: u32, batch: u32) -> Result<Self> {
        let (d, qd, kv, hd, ffn) = (cfg.dim, cfg.q_dim(), cfg.kv_heads * cfg.head_dim, cfg.head_dim, cfg.ffn);
        let embd = weight(g, "token_embd.weight", cfg.vocab, d)?;
        let output = if g.tensors.contains_key("output.weight") {
            weight(g, "output.weight", cfg.vocab, d)?
        } else {
            weight(g, "token_embd.weight", cfg.vocab, d)?
        };
        let rope_factors = match g.tensors.contains_key("rope_freqs.weight") {
            true => Some(weight(g, "rope_freqs.weight", 1, hd / 2)?),
            false => None,
        };
        let layers = (0..cfg.layers)
            .map(|i| {
                let w = |n: &str, r, c| weight(g, &format!("blk.{i}.{n}.weight"), r, c);
                let b = |n: &str, r| weight(g, &format!("blk.{i}.{n}.bias"), 1, r);
                let has = |n: &str| g.tensors.contains_key(&format!("blk.{i}.{n}"));
                let bias = match has("attn_q.bias") {
                    true => Some([b("attn_q", qd)?, b("attn_k", kv)?, b("attn_v", kv)?]),
                    false => None,
                };
                let qk_norm = match has("attn_q_norm.weight") {
                    true => Some([w("attn_q_norm", 1, hd)?, w("attn_k_norm", 1, hd)?]),
                    false => None,
                };
                let post_norms = match cfg.post_norms {
                    true => Some([w("post_attention_norm", 1, d)?, w("post_ffw_norm", 1, d)?]),
                    false => None,
                };
                let sliding = cfg.sliding.as_ref().filter(|s| s.layers[i as usize]);
                // phi3 fuses q/k/v into one tensor, and the gate with the up projection.
                let [wq, wk, wv] = match has("attn_qkv.weight") {
                    true => parts(weights(g, &format!("blk.{i}.attn_qkv.weight"), &[qd, kv, kv], d)?),
                    false => [w("attn_q", qd, d)?, w("attn_k", kv, d)?, w("attn_v", kv, d)?],
                };
                let [gate, up] = match has("ffn_gate.weight") {
                    true => [w("ffn_gate", ffn, d)?, w("ffn_up", ffn, d)?],
                    false => parts(weights(g, &format!("blk.{i}.ffn_up.weight"), &[ffn, ffn], d)?),
                };
                Ok(Layer {
                    bias,
                    qk_norm,
                    post_norms,
                    window: sliding.map(|s| s.window),
                    rope_base: sliding.map_or(cfg.rope_base, |s| s.rope_base),
                    attn_norm: w("attn_norm", 1, d)?,
                    wq,
                    wk,
                    wv,
                    wo: w("attn_output", d, qd)?,
                    ffn_norm: w("ffn_norm", 1, d)?,
                    gate,
                    up,
                    down: w("ffn_down", d, ffn)?,
                    k_cache: compute::activation(context, kv)?,
                    v_cache: compute::activation(context, kv)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let act = |c| compute::activation(batch, c);
        let raw_qk = match layers.iter().any(|l| l.qk_norm.is_some()) {
            true => Some([act(qd)?, act(kv)?]),
            false => None,
        };
        let s = Scratch {
            x: act(d)?,
            xb: act(d)?,
            q: act(qd)?,
            k: act(kv)?,
            raw_qk,
            v: act(kv)?,
            att: act(qd)?,
            gate: act(ffn)?,
            up: act(ffn)?,
            act: act(ffn)?,
            last: compute::activation(1, d)?,
            last_norm: compute::activation(1, d)?,
            logits: compute::activation(1, cfg.vocab)?,
        };
        Ok(Self { out_norm: weight(g, "output_norm.weight", 1, d)?, cfg, context, batch, embd, output, rope_factors, layers, s })
    }

    /// Runs `tokens` at positions `pos..`, filling the KV cache and leaving the last token's
    /// logits ready for [`Model::candidates`].
    pub fn forward(&mut self, tokens: &[u32], pos: u32) -> Result<()> {
        if tokens.is_empty() || pos as usize + tokens.len() > self.context as usize {
            return Err(Error::Context(format!(
                "{} tokens at position {pos} do not fit the {}-token context",
                tokens.len(),
                self.context
            )));
        }
        let (s, c) = (&self.s, &self.cfg);
        let mut pos = pos;
        let mut n = 0;
        for chunk in tokens.chunks(self.batch as usize) {
            n = chunk.len() as u32;
            compute::embed(&self.embd, chunk, c.embed_scale, &s.x)?;
            for l in &self.layers {
                compute::rms_norm(&s.x, &l.attn_norm, c.eps, n, &s.xb, false)?;
                // With per-head norms, q and k come out raw and are normed into place.
                let (q, k) = match (&l.qk_norm, &s.raw_qk) {
                    (Some(_), Some([q, k])) => (q, k),
                    _ => (&s.q, &s.k),
                };
                compute::matmul(&l.wq, &s.xb, n, q, false)?;
                compute::matmul(&l.wk, &s.xb, n, k, false)?;
                compute::matmul(&l.wv, &s.xb, n, &s.v, false)?;
                if let Some([bq, bk, bv]) = &l.bias {
                    compute::add_bias(q, bq, n)?;
                    compute::add_bias(k, bk, n)?;
                    compute::add_bias(&s.v, bv, n)?;
                }
                if let Some([qn, kn]) = &l.qk_norm {
                    compute::rms_norm(q, qn, c.eps, n, &s.q, false)?;
                    compute::rms_norm(k, kn, c.eps, n, &s.k, false)?;
                }
                let factors = self.rope_factors.as_ref();
                compute::rope(&s.q, c.head_dim, pos, n, l.rope_base, c.rope_style, factors)?;
                compute::rope(&s.k, c.head_dim, pos, n, l.rope_base, c.rope_style, factors)?;
                compute::attention(&s.q, &s.k, &s.v, &l.k_cache, &l.v_cache, c.head_dim, pos, n, l.window, &s.att)?;
                self.join_residual(&l.wo, &s.att, l.post_norms.as_ref().map(|[a, _]| a), n)?;
                compute::rms_norm(&s.x, &l.ffn_norm, c.eps, n, &s.xb, false)?;
                compute::matmul(&l.gate, &s.xb, n, &s.gate, false)?;
                compute::matmul(&l.up, &s.xb, n, &s.up, false)?;
                compute::glu(&s.gate, &s.up, c.act, n, &s.act)?;
                self.join_residual(&l.down, &s.act, l.post_norms.as_ref().map(|[_, f]| f), n)?;
            }
            pos += n;
        }
        compute::copy_row(&s.x, n - 1, &s.last, 0)?;
        compute::rms_norm(&s.last, &self.out_norm, c.eps, 1, &s.last_norm, false)?;
        compute::matmul(&self.output, &s.last_norm, 1, &s.logits, false)?;
        Ok(())
    }

    /// Adds a block's output projection `w · input` to the residual stream, normed first where
    /// the architecture norms it (into the free `xb`, whose normed input has been read).
    fn join_residual(&self, w: &Tensor, input: &Tensor, post_norm: Option<&Tensor>, n: u32) -> Result<()> {
        let s = &self.s;
        match post_norm {
            None => compute::matmul(w, input, n, &s.x, true)?,
            Some(norm) => {
                compute::matmul(w, input, n, &s.xb, false)?;
                compute::rms_norm(&s.xb, norm, self.cfg.eps, n, &s.x, true)?;
            }
        }
        Ok(())
    }

    /// Applies the repetition penalty to the pending logits.
    pub fn penalize(&self, recent: &[u32], penalty: f32) -> Result<()> {
        Ok(compute::penalize(&self.s.logits, 0, recent, penalty)?)
    }

    /// Keeps only the tokens set in `allowed` (a grammar's bitset) in the last logits.
    pub fn mask(&self, allowed: &[u32]) -> Result<()> {
        Ok(compute::mask(&self.s.logits, 0, allowed)?)
    }

    /// The `k` most likely next tokens after the last [`Model::forward`], best first.
    pub fn candidates(&self, k: u32) -> Result<Vec<Candidate>> {
        Ok(compute::top_k(&self.s.logits, 0, k)?)
    }
}
