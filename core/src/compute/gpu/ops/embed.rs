//! Embedding lookup: the rows of a (quantised) table for a list of tokens, scaled.

use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::kernels::{format_index, Layout};
use crate::compute::gpu::GpuBackend;
use crate::compute::{ActId, BackendResult, WeightId};

/// The shader, after the shared weight layout (one pipeline per weight format).
pub const SOURCE: &str = include_str!("../../../../../shaders/embed.wgsl");
/// It reads the table's quants and scales and the token ids, and writes the rows.
pub const LAYOUT: Layout = Layout::R3W1;

uniform! {
    /// `embed.wgsl`'s parameters.
    in SOURCE => {
        /// Row width.
        cols: u32,
        /// Tokens looked up.
        tokens: u32,
        /// Where the first token is in the id arena.
        ids_at: u32,
        /// First table row of this part.
        row0: u32,
        /// Rows in this part.
        rows: u32,
        /// Factor on every element.
        scale: f32,
    }
}

/// Records the rows of `tokens` in `table`, times `scale`, into `out`: one dispatch per part of
/// the table that holds one of them.
pub fn record(gpu: &mut GpuBackend, table: WeightId, tokens: &[u32], scale: f32, out: ActId) -> BackendResult {
    gpu.record_pending()?;
    let parts = gpu.weights[table.0].parts.len();
    let ids_at = gpu.ids(tokens, parts)?;
    let w = &gpu.weights[table.0];
    let kernel = gpu.kernels.embed[format_index(w.bits)].clone();
    let cols = w.cols;
    for i in 0..parts {
        let part = &gpu.weights[table.0].parts[i];
        let (row0, rows) = (part.row0, part.rows);
        if !tokens.iter().any(|&t| (row0..row0 + rows).contains(&(t as usize))) {
            continue;
        }
        let params = Params {
            cols: cols as u32,
            tokens: tokens.len() as u32,
            ids_at: ids_at as u32,
            row0: row0 as u32,
            rows: rows as u32,
            scale,
        };
        let groups = ((cols as u32).div_ceil(64), tokens.len() as u32, 1);
        let bound = [Resource::Weight(table, i), Resource::WeightScales(table, i), Resource::Ids, Resource::Act(out)];
        gpu.dispatch(&kernel, &bound, params, groups)?;
    }
    Ok(())
}
