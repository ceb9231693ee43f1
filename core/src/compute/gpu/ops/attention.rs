//! Causal attention over the KV cache (storing the new keys and values as it goes), over spans of
//! the cache in parallel and a merge of the spans' partial sums.

use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::kernels::Layout;
use crate::compute::gpu::GpuBackend;
use crate::compute::{AttentionIo, AttentionShape, BackendError, BackendResult};

/// The shader: `main` attends over a span, `combine` merges the spans.
pub const SOURCE: &str = include_str!("../../../../../shaders/attention.wgsl");
/// It reads queries and the new keys and values, and writes the caches, the output and the
/// partial sums.
pub const LAYOUT: Layout = Layout::R3W4;

/// Positions per workgroup: short spans spread one token over many workgroups (on an H200, 32
/// beat 64 and 128 with the merge counted).
const CHUNK: usize = 32;

uniform! {
    /// `attention.wgsl`'s parameters.
    in SOURCE => {
        /// Query heads.
        heads: u32,
        /// Key/value heads.
        kv_heads: u32,
        /// Head width.
        head_dim: u32,
        /// Position of the first query.
        pos: u32,
        /// Queries.
        n: u32,
        /// Score scale.
        scale: f32,
        /// Cache positions per workgroup of `main`.
        span: u32,
        /// Spans.
        spans: u32,
        /// Positions a query sees, its own among them (0: all before it).
        window: u32,
    }
}

/// Records attention of `io.q` over the cache into `io.out`.
pub fn record(gpu: &mut GpuBackend, io: AttentionIo, a: AttentionShape) -> BackendResult {
    gpu.record_pending()?;
    if a.head_dim % 4 != 0 {
        return Err(BackendError::Unsupported(format!("attention heads {} wide (the GPU needs a multiple of 4)", a.head_dim)));
    }
    let len = a.pos + a.n;
    // Spans of 32 positions, fewer and longer when their partial sums would not fit.
    let per_span = a.n * a.heads * (a.head_dim + 2) * 4;
    let most = (gpu.max_binding as usize / per_span).clamp(1, 1024);
    let span = len.div_ceil(CHUNK).div_ceil(most) * CHUNK;
    let spans = len.div_ceil(span);
    gpu.scratch(|s| &mut s.spans, 1, if spans > 1 { (spans * per_span) as u64 } else { 16 });
    let params = Params {
        heads: a.heads as u32,
        kv_heads: a.kv_heads as u32,
        head_dim: a.head_dim as u32,
        pos: a.pos as u32,
        n: a.n as u32,
        scale: 1.0 / (a.head_dim as f32).sqrt(),
        span: span as u32,
        spans: spans as u32,
        window: a.window.unwrap_or(0) as u32,
    };
    let bound = [
        Resource::Act(io.q),
        Resource::Act(io.k),
        Resource::Act(io.v),
        Resource::Act(io.k_cache),
        Resource::Act(io.v_cache),
        Resource::Act(io.out),
        Resource::Spans,
    ];
    let (attend, combine) = gpu.kernels.attention(a.head_dim);
    let (heads, n) = (a.heads as u32, a.n as u32);
    gpu.dispatch(&attend, &bound, params, (heads, n, spans as u32))?;
    if spans > 1 {
        gpu.dispatch(&combine, &bound, params, (heads, n, 1))?;
    }
    Ok(())
}
