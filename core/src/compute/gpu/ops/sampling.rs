//! The ops sampling needs on the logits: the repetition penalty, a grammar's mask, and top-k,
//! the one read-back of a token.

use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::kernels::Layout;
use crate::compute::gpu::GpuBackend;
use crate::compute::{ActId, BackendResult, MAX_TOP_K};

/// Each of them reads one buffer and updates or writes another.
pub const LAYOUT: Layout = Layout::R1W1;

/// The repetition penalty.
pub mod penalize {
    /// The shader.
    pub const SOURCE: &str = include_str!("../../../../../shaders/penalize.wgsl");

    uniform! {
        /// `penalize.wgsl`'s parameters.
        in SOURCE => {
            /// Tokens penalised.
            count: u32,
            /// Where the first is in the id arena.
            ids_at: u32,
            /// First logit of the row.
            row_at: u32,
            /// The penalty.
            penalty: f32,
        }
    }
}

/// A grammar's token mask.
pub mod mask {
    /// The shader.
    pub const SOURCE: &str = include_str!("../../../../../shaders/mask.wgsl");

    uniform! {
        /// `mask.wgsl`'s parameters.
        in SOURCE => {
            /// Logits in the row.
            cols: u32,
            /// Words of the bitset.
            words: u32,
            /// Where the bitset is in the id arena.
            words_at: u32,
            /// First logit of the row.
            row_at: u32,
        }
    }
}

/// The `k` largest logits, in rounds of segments.
pub mod top_k {
    /// The shader.
    pub const SOURCE: &str = include_str!("../../../../../shaders/top_k.wgsl");
    /// Entries one workgroup reduces to its best `k`.
    pub const SEG: usize = 1024;

    uniform! {
        /// `top_k.wgsl`'s parameters.
        in SOURCE => {
            /// Entries in the input.
            count: u32,
            /// First input word.
            at: u32,
            /// 1: plain f32 values; 2: (value bits, id) pairs.
            stride: u32,
            /// Candidates kept.
            k: u32,
        }
    }
}

/// Records the repetition penalty of `tokens` on row `row` of `logits`.
pub fn penalize(gpu: &mut GpuBackend, logits: ActId, row: usize, tokens: &[u32], penalty: f32) -> BackendResult {
    gpu.record_pending()?;
    let cols = gpu.act(logits).cols;
    let mut distinct = Vec::new();
    crate::compute::distinct_below(tokens, cols, &mut distinct);
    if distinct.is_empty() {
        return Ok(());
    }
    let ids_at = gpu.ids(&distinct, 1)?;
    let kernel = gpu.kernels.penalize.clone();
    let params = penalize::Params { count: distinct.len() as u32, ids_at: ids_at as u32, row_at: (row * cols) as u32, penalty };
    let groups = ((distinct.len() as u32).div_ceil(64), 1, 1);
    gpu.dispatch(&kernel, &[Resource::Ids, Resource::Act(logits)], params, groups)
}

/// Records the mask of row `row` of `logits` by the bitset `allowed`.
pub fn mask(gpu: &mut GpuBackend, logits: ActId, row: usize, allowed: &[u32]) -> BackendResult {
    gpu.record_pending()?;
    let cols = gpu.act(logits).cols;
    let words = allowed.len().min(cols.div_ceil(32));
    // An empty bitset still needs a binding; its one word is never read.
    let words_at = gpu.ids(if words == 0 { &[0] } else { &allowed[..words] }, 1)?;
    let kernel = gpu.kernels.mask.clone();
    let params = mask::Params { cols: cols as u32, words: words as u32, words_at: words_at as u32, row_at: (row * cols) as u32 };
    gpu.dispatch(&kernel, &[Resource::Ids, Resource::Act(logits)], params, ((cols as u32).div_ceil(256), 1, 1))
}

/// Runs what is recorded and reads back the `k` largest logits of row `row`, best first.
pub fn top_k(gpu: &mut GpuBackend, logits: ActId, row: usize, k: usize) -> BackendResult<Vec<(u32, f32)>> {
    gpu.record_pending()?;
    let cols = gpu.act(logits).cols;
    let k = k.clamp(1, cols.min(MAX_TOP_K));
    gpu.scratch(|s| &mut s.top_k, 2, (cols.div_ceil(top_k::SEG) * k * 8) as u64);
    let kernel = gpu.kernels.top_k.clone();
    let (mut input, mut count, mut at, mut stride) = (Resource::Act(logits), cols, row * cols, 1);
    let mut round = 0;
    loop {
        let segs = count.div_ceil(top_k::SEG);
        let output = Resource::TopK(round % 2);
        let params = top_k::Params { count: count as u32, at: at as u32, stride, k: k as u32 };
        gpu.dispatch(&kernel, &[input, output], params, (segs as u32, 1, 1))?;
        (input, count, at, stride) = (output, segs * k, 0, 2);
        round += 1;
        if segs == 1 {
            break;
        }
    }
    let last = gpu.top_k.as_ref().expect("made above").bufs[(round - 1) % 2].buf.clone();
    let bytes = gpu.flush(Some((&last, (k * 8) as u64)))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let v = f32::from_le_bytes(c[..4].try_into().expect("4 bytes"));
            (u32::from_le_bytes(c[4..].try_into().expect("4 bytes")), v)
        })
        .collect())
}
