//! One row of an activation copied into a row of another.

use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::kernels::Layout;
use crate::compute::gpu::GpuBackend;
use crate::compute::{ActId, BackendResult};

/// The shader.
pub const SOURCE: &str = include_str!("../../../../../shaders/copy_row.wgsl");
/// It reads the source and writes the destination.
pub const LAYOUT: Layout = Layout::R1W1;

uniform! {
    /// `copy_row.wgsl`'s parameters.
    in SOURCE => {
        /// Elements copied.
        count: u32,
        /// First source element.
        src_at: u32,
        /// First destination element.
        dst_at: u32,
    }
}

/// Records the copy of row `src_row` of `src` into row `dst_row` of `dst`.
pub fn record(gpu: &mut GpuBackend, src: ActId, src_row: usize, dst: ActId, dst_row: usize) -> BackendResult {
    gpu.record_pending()?;
    let cols = gpu.act(src).cols;
    let kernel = gpu.kernels.copy_row.clone();
    let params = Params { count: cols as u32, src_at: (src_row * cols) as u32, dst_at: (dst_row * cols) as u32 };
    gpu.dispatch(&kernel, &[Resource::Act(src), Resource::Act(dst)], params, ((cols as u32).div_ceil(256), 1, 1))
}
