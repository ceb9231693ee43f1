//! Mat-muls of a quantised or float weight, up to three sharing one input, with the input made
//! on the fly (RMSNorm or SiLU·mul of what it reads) and the outputs optionally rotated: by
//! weight rows for a few tokens, by tiles of rows × tokens for a prompt. What
//! merges into one dispatch is [`crate::compute::gpu::fusion`]'s call; this records it.

use super::grid;
use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::fusion::{fuse_matmul, Aux, FusedMatmul, Pending, WeightShape};
use crate::compute::gpu::kernels::Layout;
use crate::compute::gpu::GpuBackend;
use crate::compute::{ActId, BackendResult, RopeSpec, WeightId};

/// The shader, after the shared weight layout and rotation.
pub const SOURCE: &str = include_str!("../../../../../shaders/matmul.wgsl");
/// It reads three weights' quants and scales, the input and its auxiliary, and writes three
/// outputs and the made input.
pub const LAYOUT: Layout = Layout::Matmul;
/// Storage buffers it binds: what the backend requires of an adapter.
pub const BINDINGS: u32 = 12;
/// Tokens per workgroup of the row kernel (the shader's `TILE`) past one token.
pub const TILE: u32 = 8;
/// Weight rows and tokens of one workgroup of the tiled kernel (the shader's `TR` and `TT`).
const TILE_ROWS: usize = 32;
const TILE_TOKENS: usize = 32;
/// Tokens from which a quantised weight's mat-mul runs tiled: below, the row kernel spreads
/// over more workgroups.
pub const TILED_FROM: usize = 32;

/// How a mat-mul makes its input from the activation it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatmulInput {
    /// The activation as is.
    Plain = 0,
    /// RMSNorm of the activation times a norm weight.
    Norm = 1,
    /// SiLU of the activation times a second activation.
    Silu = 2,
}

/// One mat-mul pipeline's specialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatmulVariant {
    /// Weight format (4, 8 or 32 bits).
    pub bits: u32,
    /// Tiles of rows × tokens staged in shared memory (`tiles`, for prefill) instead of
    /// weight rows (`main`; `tile` and `lanes` apply to it alone).
    pub tiled: bool,
    /// Tokens per workgroup (1 or [`TILE`]).
    pub tile: u32,
    /// Input transform.
    pub input: MatmulInput,
    /// Weights sharing the input (1–3).
    pub count: u32,
    /// Threads per weight row (16 or 64; the workgroup has 64).
    pub lanes: u32,
    /// Elements per weight row.
    pub cols: u32,
}

uniform! {
    /// `matmul.wgsl`'s parameters.
    in SOURCE => {
        /// Output rows of the first weight.
        rows0: u32,
        /// Output rows of the second (0: none).
        rows1: u32,
        /// Output rows of the third (0: none).
        rows2: u32,
        /// Tokens.
        n: u32,
        /// Add to the output instead of overwriting it.
        accumulate: u32,
        /// First output column (a part of a split weight; one weight only).
        row0: u32,
        /// Output row width (one weight; fused outputs are their weight's height).
        out_cols: u32,
        /// Workgroups along x.
        nx: u32,
        /// The fused norm's epsilon.
        eps: f32,
        /// Bit k: rotate output k.
        rope: u32,
        /// The rotation's head width.
        rope_head_dim: u32,
        /// The rotation's position of the first token.
        rope_pos: u32,
        /// The rotation's frequency base.
        rope_base: f32,
    }
}

/// Fuses the mat-mul into the held-back op where it can, else holds it back.
pub fn hold(gpu: &mut GpuBackend, w: WeightId, x: ActId, rows: usize, out: ActId, accumulate: bool) -> BackendResult {
    gpu.check()?;
    let shape = gpu.weight_shape(w);
    if let Some(pending) = &gpu.pending {
        let first = match pending {
            Pending::Matmul(m) => Some(gpu.weight_shape(m.targets[0].0)),
            _ => None,
        };
        if let Some(fused) = fuse_matmul(pending, first, shape, (w, x, rows, out, accumulate)) {
            gpu.pending = Some(Pending::Matmul(fused));
            return Ok(());
        }
    }
    gpu.record_pending()?;
    gpu.pending = Some(Pending::Matmul(FusedMatmul::plain(w, x, rows, out, accumulate)));
    Ok(())
}

/// Records up to three mat-muls sharing an input as one dispatch per part of the weight.
pub fn record(gpu: &mut GpuBackend, m: FusedMatmul) -> BackendResult {
    let (w0, out0) = m.targets[0];
    let WeightShape { bits, cols, .. } = gpu.weight_shape(w0);
    let tiled = bits != 32 && m.rows >= TILED_FROM;
    let tile = if m.rows == 1 || tiled { 1 } else { TILE };
    let heights: Vec<usize> = m.targets.iter().map(|&(w, _)| gpu.weights[w.0].parts[0].rows).collect();
    // Four rows to a workgroup where that still leaves enough workgroups to fill a large GPU
    // (measured on an H200: the output matrix and prefill gain, q/k/v and down lose).
    // A rotation pairs adjacent rows, which must share a workgroup.
    let lanes = if tiled {
        64
    } else if tile > 1 || heights.iter().sum::<usize>() >= 2048 {
        16
    } else if m.rope.is_some() {
        32
    } else {
        64
    };
    let (rope, rope_mask) =
        m.rope.map_or((RopeSpec { head_dim: 2, pos: 0, n: 0, base: 1.0, interleaved: true, factors: None }, 0), |r| r);
    let variant = MatmulVariant { bits, tiled, tile, input: m.input, count: m.targets.len() as u32, lanes, cols: cols as u32 };
    let kernel = gpu.kernels.matmul(variant);
    let out_cols = gpu.act(out0).cols;
    let aux = match m.aux {
        Some(Aux::Weight(w)) => Resource::Weight(w, 0),
        Some(Aux::Act(a)) => Resource::Act(a),
        None => Resource::Act(m.x),
    };
    for part in 0..gpu.weights[w0.0].parts.len() {
        let p = &gpu.weights[w0.0].parts[part];
        let (row0, rows) = (p.row0, p.rows);
        let height = |k: usize| if k == 0 { rows } else { heights.get(k).copied().unwrap_or(0) };
        let rows_per_group = if tiled { TILE_ROWS } else { 64 / lanes as usize };
        let (nx, ny) = grid((height(0) + height(1) + height(2)).div_ceil(rows_per_group));
        let tokens_per_group = if tiled { TILE_TOKENS } else { tile as usize };
        let params = Params {
            rows0: height(0) as u32,
            rows1: height(1) as u32,
            rows2: height(2) as u32,
            n: m.rows as u32,
            accumulate: m.accumulate as u32,
            row0: row0 as u32,
            out_cols: out_cols as u32,
            nx,
            eps: m.eps,
            rope: rope_mask,
            rope_head_dim: rope.head_dim as u32,
            rope_pos: rope.pos as u32,
            rope_base: rope.base,
        };
        let weight = |k: usize| m.targets.get(k).map_or((w0, part), |&(w, _)| (w, if k == 0 { part } else { 0 }));
        let out = |k: usize| m.targets.get(k).map_or(Resource::Dummy(k), |&(_, o)| Resource::Act(o));
        let bound = [
            Resource::Weight(weight(0).0, weight(0).1),
            Resource::WeightScales(weight(0).0, weight(0).1),
            Resource::Weight(weight(1).0, weight(1).1),
            Resource::WeightScales(weight(1).0, weight(1).1),
            Resource::Weight(weight(2).0, weight(2).1),
            Resource::WeightScales(weight(2).0, weight(2).1),
            Resource::Act(m.x),
            aux,
            out(0),
            out(1),
            out(2),
            m.side.map_or(Resource::Dummy(0), Resource::Act),
        ];
        gpu.dispatch(&kernel, &bound, params, (nx, ny, m.rows.div_ceil(tokens_per_group) as u32))?;
    }
    Ok(())
}
