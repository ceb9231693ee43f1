//! Rotary position embedding of one tensor or two in place. Held back first: the rotation of a
//! mat-mul's output fuses into that mat-mul, and a second tensor's into the first's dispatch.

use super::grid;
use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::fusion::{fuse_rope, Pending};
use crate::compute::gpu::kernels::Layout;
use crate::compute::gpu::GpuBackend;
use crate::compute::{ActId, BackendResult, RopeSpec};

/// The shader, after the shared rotation.
pub const SOURCE: &str = include_str!("../../../../../shaders/rope.wgsl");
/// It updates one tensor or two and reads the frequency factors.
pub const LAYOUT: Layout = Layout::W2R1;

uniform! {
    /// `rope.wgsl`'s parameters.
    in SOURCE => {
        /// Row width of the first tensor.
        cols: u32,
        /// Row width of the second (0: none).
        cols_y: u32,
        /// Rotated width of a head.
        head_dim: u32,
        /// Position of the first row.
        pos: u32,
        /// Rows.
        n: u32,
        /// The frequency base.
        base: f32,
        /// 1: adjacent pairs; 0: halves (NeoX).
        interleaved: u32,
        /// Workgroups along x.
        nx: u32,
        /// 1: frequencies divided by the factors bound.
        has_factors: u32,
    }
}

/// Fuses the rotation into the held-back op where it can, else holds it back.
pub fn hold(gpu: &mut GpuBackend, x: ActId, spec: RopeSpec) -> BackendResult {
    gpu.check()?;
    // Rotated pairs of rows must not straddle the parts of a split weight.
    let whole = match &gpu.pending {
        Some(Pending::Matmul(m)) => m.targets.iter().all(|&(w, _)| gpu.weight_shape(w).whole),
        _ => true,
    };
    if let Some(fused) = gpu.pending.as_ref().filter(|_| whole).and_then(|p| fuse_rope(p, x, spec)) {
        gpu.pending = Some(fused);
        return Ok(());
    }
    gpu.record_pending()?;
    gpu.pending = Some(Pending::Rope { x, y: None, spec });
    Ok(())
}

/// Records the rotation of `x` (and `y`) as a dispatch of its own.
pub fn record(gpu: &mut GpuBackend, x: ActId, y: Option<ActId>, s: RopeSpec) -> BackendResult {
    let cols = gpu.act(x).cols;
    let cols_y = y.map_or(0, |y| gpu.act(y).cols);
    let (nx, ny) = grid((s.n * (cols + cols_y) / 2).div_ceil(64));
    let params = Params {
        cols: cols as u32,
        cols_y: cols_y as u32,
        head_dim: s.head_dim as u32,
        pos: s.pos as u32,
        n: s.n as u32,
        base: s.base,
        interleaved: s.interleaved as u32,
        nx,
        has_factors: s.factors.is_some() as u32,
    };
    let kernel = gpu.kernels.rope.clone();
    let factors = s.factors.map_or(Resource::Dummy(1), |f| Resource::Weight(f, 0));
    let bound = [Resource::Act(x), y.map_or(Resource::Dummy(0), Resource::Act), factors];
    gpu.dispatch(&kernel, &bound, params, (nx, ny, 1))
}
