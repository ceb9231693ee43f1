//! A bias added to every row in place.

use super::grid;
use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::kernels::Layout;
use crate::compute::gpu::GpuBackend;
use crate::compute::{ActId, BackendResult, WeightId};

/// The shader.
pub const SOURCE: &str = include_str!("../../../../../shaders/add_bias.wgsl");
/// It reads the bias and updates the rows.
pub const LAYOUT: Layout = Layout::R1W1;

uniform! {
    /// `add_bias.wgsl`'s parameters.
    in SOURCE => {
        /// Row width (the bias's length).
        cols: u32,
        /// Elements.
        count: u32,
        /// Workgroups along x.
        nx: u32,
    }
}

/// Records `x[r] += bias` for the first `rows` rows.
pub fn record(gpu: &mut GpuBackend, x: ActId, bias: WeightId, rows: usize) -> BackendResult {
    gpu.check()?;
    gpu.record_pending()?;
    let cols = gpu.act(x).cols;
    let count = rows * cols;
    let (nx, ny) = grid(count.div_ceil(256));
    let kernel = gpu.kernels.add_bias.clone();
    let params = Params { cols: cols as u32, count: count as u32, nx };
    gpu.dispatch(&kernel, &[Resource::Weight(bias, 0), Resource::Act(x)], params, (nx, ny, 1))
}
