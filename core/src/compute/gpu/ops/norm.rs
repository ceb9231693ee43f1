//! RMSNorm of rows (or of groups of a row as wide as the weight: per-head norms), optionally
//! added to the output. Held back first: over whole rows it fuses into the mat-muls that read it.

use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::fusion::Pending;
use crate::compute::gpu::kernels::Layout;
use crate::compute::gpu::GpuBackend;
use crate::compute::{ActId, BackendResult, NormSpec, WeightId};

/// The shader.
pub const SOURCE: &str = include_str!("../../../../../shaders/rms_norm.wgsl");
/// It reads the rows and the weight, and writes the normed rows.
pub const LAYOUT: Layout = Layout::R2W1;

uniform! {
    /// `rms_norm.wgsl`'s parameters.
    in SOURCE => {
        /// Elements per normed group (the weight's width).
        cols: u32,
        /// Added to the mean square.
        eps: f32,
        /// Add to the output instead of overwriting it.
        accumulate: u32,
    }
}

/// Holds the norm back for fusion.
pub fn hold(gpu: &mut GpuBackend, x: ActId, weight: WeightId, spec: NormSpec, out: ActId) -> BackendResult {
    gpu.check()?;
    gpu.record_pending()?;
    let whole_rows = gpu.weights[weight.0].cols == gpu.act(x).cols;
    gpu.pending = Some(Pending::Norm { x, weight, spec, whole_rows, out });
    Ok(())
}

/// Records the norm as a dispatch of its own.
pub fn record(gpu: &mut GpuBackend, x: ActId, weight: WeightId, spec: NormSpec, out: ActId) -> BackendResult {
    let (cols, group) = (gpu.act(x).cols, gpu.weights[weight.0].cols);
    let kernel = gpu.kernels.rms_norm.clone();
    let params = Params { cols: group as u32, eps: spec.eps, accumulate: spec.accumulate as u32 };
    let bound = [Resource::Act(x), Resource::Weight(weight, 0), Resource::Act(out)];
    gpu.dispatch(&kernel, &bound, params, ((spec.rows * cols / group) as u32, 1, 1))
}
