//! The llama-family transformer, driven by GGUF metadata, expressed as host kernel calls.

use crate::bindings::murmur::llm::compute::{self, Candidate, RopeStyle, Tensor};
use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo};

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
    /// Width of one head.
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
}

/// Architectures whose GGUF tensors follow the llama layout, and how each rotates: llama's
/// GGUF export permutes q/k into adjacent pairs; qwen2 keeps the NeoX halves (and adds q/k/v
/// biases, loaded where present).
const LLAMA_LIKE: [(&str, RopeStyle); 3] =
    [("llama", RopeStyle::Interleaved), ("mistral", RopeStyle::Interleaved), ("qwen2", RopeStyle::Halves)];

impl Config {
    /// Reads the hyper-parameters, rejecting architectures Murmur cannot run.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.str("general.architecture").unwrap_or("").to_string();
        let Some(&(_, rope_style)) = LLAMA_LIKE.iter().find(|(a, _)| *a == arch) else {
            return Err(Error::Unsupported(format!(
                "architecture '{arch}'; Murmur runs llama (SmolLM2, TinyLlama, Llama 2/3), mistral and qwen2 (Qwen2, Qwen2.5) models"
            )));
        };
        let key = |k: &str| format!("{arch}.{k}");
        let dim = g.req_u32(&key("embedding_length"))?;
        let heads = g.req_u32(&key("attention.head_count"))?;
        let kv_heads =
            g.int(&key("attention.head_count_kv")).map_or(Ok(heads), |_| g.req_u32(&key("attention.head_count_kv")))?;
        if dim % heads != 0 || heads % kv_heads != 0 {
            return Err(Error::Model(format!("inconsistent heads: width {dim}, {heads} heads, {kv_heads} KV heads")));
        }
        let head_dim = dim / heads;
        let rope_dims = g.int(&key("rope.dimension_count")).unwrap_or(head_dim as i64);
        if rope_dims != head_dim as i64 {
            return Err(Error::Unsupported(format!("partial rotary embedding ({rope_dims} of {head_dim} dimensions)")));
        }
        // Llama 3's scaling is the `rope_freqs` tensor, which the rotation divides by; other
        // schemes change the rotation itself.
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
        Ok(Self {
            layers: g.req_u32(&key("block_count"))?,
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
            arch,
        })
    }
}

fn tensor<'a>(g: &'a Gguf, name: &str) -> Result<&'a TensorInfo> {
    g.tensors.get(name).ok_or_else(|| Error::Model(format!("the model lacks tensor '{name}'")))
}

/// A weight handle for tensor `name`, checked to be `rows` x `cols`.
fn weight(g: &Gguf, name: &str, rows: u32, cols: u32) -> Result<Tensor> {
    let info = tensor(g, name)?;
    let (c, r) = (info.dims[0], info.dims.get(1).copied().unwrap_or(1));
    if (r, c) != (rows as u64, cols as u64) || info.dims.iter().skip(2).any(|&d| d != 1) {
        return Err(Error::Model(format!("tensor '{name}' is {:?}, expected [{cols}, {rows}]", info.dims)));
    }
    Ok(compute::weight(info.dtype, rows, cols, info.offset)?)
}

struct Layer {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    /// Biases of q, k and v, where the architecture has them.
    bias: Option<[Tensor; 3]>,
    wo: Tensor,
    ffn_norm: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
}

/// Activation buffers, allocated once for `batch` tokens and reused for every step.
struct Scratch {
    x: Tensor,
    xb: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    att: Tensor,
    gate: Tensor,
    up: Tensor,
    act: Tensor,
    last: Tensor,
    last_norm: Tensor,
    logits: Tensor,
}

/// A loaded llama-family model with its KV cache.
pub struct Llama {
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

impl Llama {
    /// Binds the model's weights and allocates a KV cache of `context` tokens and scratch
    /// for prompt chunks of `batch` tokens.
    pub fn load(g: &Gguf, cfg: Config, context: u32, batch: u32) -> Result<Self> {
        let (d, kv, ffn) = (cfg.dim, cfg.kv_heads * cfg.head_dim, cfg.ffn);
        let embd = weight(g, "token_embd.weight", cfg.vocab, d)?;
        let output = if g.tensors.contains_key("output.weight") {
            weight(g, "output.weight", cfg.vocab, d)?
        } else {
            weight(g, "token_embd.weight", cfg.vocab, d)?
        };
        let rope_factors = match g.tensors.contains_key("rope_freqs.weight") {
            true => Some(weight(g, "rope_freqs.weight", 1, cfg.head_dim / 2)?),
            false => None,
        };
        let layers = (0..cfg.layers)
            .map(|i| {
                let w = |n: &str, r, c| weight(g, &format!("blk.{i}.{n}.weight"), r, c);
                let b = |n: &str, r| weight(g, &format!("blk.{i}.{n}.bias"), 1, r);
                let bias = match g.tensors.contains_key(&format!("blk.{i}.attn_q.bias")) {
                    true => Some([b("attn_q", d)?, b("attn_k", kv)?, b("attn_v", kv)?]),
                    false => None,
                };
                Ok(Layer {
                    bias,
                    attn_norm: w("attn_norm", 1, d)?,
                    wq: w("attn_q", d, d)?,
                    wk: w("attn_k", kv, d)?,
                    wv: w("attn_v", kv, d)?,
                    wo: w("attn_output", d, d)?,
                    ffn_norm: w("ffn_norm", 1, d)?,
                    gate: w("ffn_gate", ffn, d)?,
                    up: w("ffn_up", ffn, d)?,
                    down: w("ffn_down", d, ffn)?,
                    k_cache: compute::activation(context, kv)?,
                    v_cache: compute::activation(context, kv)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let act = |c| compute::activation(batch, c);
        let s = Scratch {
            x: act(d)?,
            xb: act(d)?,
            q: act(d)?,
            k: act(kv)?,
            v: act(kv)?,
            att: act(d)?,
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
    /// logits ready for [`Llama::candidates`].
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
            compute::embed(&self.embd, chunk, &s.x)?;
            for l in &self.layers {
                compute::rms_norm(&s.x, &l.attn_norm, c.eps, n, &s.xb)?;
                compute::matmul(&l.wq, &s.xb, n, &s.q, false)?;
                compute::matmul(&l.wk, &s.xb, n, &s.k, false)?;
                compute::matmul(&l.wv, &s.xb, n, &s.v, false)?;
                if let Some([bq, bk, bv]) = &l.bias {
                    compute::add_bias(&s.q, bq, n)?;
                    compute::add_bias(&s.k, bk, n)?;
                    compute::add_bias(&s.v, bv, n)?;
                }
                let factors = self.rope_factors.as_ref();
                compute::rope(&s.q, c.head_dim, pos, n, c.rope_base, c.rope_style, factors)?;
                compute::rope(&s.k, c.head_dim, pos, n, c.rope_base, c.rope_style, factors)?;
                compute::attention(&s.q, &s.k, &s.v, &l.k_cache, &l.v_cache, c.head_dim, pos, n, &s.att)?;
                compute::matmul(&l.wo, &s.att, n, &s.x, true)?;
                compute::rms_norm(&s.x, &l.ffn_norm, c.eps, n, &s.xb)?;
                compute::matmul(&l.gate, &s.xb, n, &s.gate, false)?;
                compute::matmul(&l.up, &s.xb, n, &s.up, false)?;
                compute::silu_mul(&s.gate, &s.up, n, &s.act)?;
                compute::matmul(&l.down, &s.act, n, &s.x, true)?;
            }
            pos += n;
        }
        compute::copy_row(&s.x, n - 1, &s.last, 0)?;
        compute::rms_norm(&s.last, &self.out_norm, c.eps, 1, &s.last_norm)?;
        compute::matmul(&self.output, &s.last_norm, 1, &s.logits, false)?;
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

    /// The `k` most likely next tokens after the last [`Llama::forward`], best first.
    pub fn candidates(&self, k: u32) -> Result<Vec<Candidate>> {
        Ok(compute::top_k(&self.s.logits, 0, k)?)
    }
}
