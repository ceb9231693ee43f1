//! The gated feed-forward product `act(gate) · up`, SiLU or GELU(tanh). Held back first: with
//! SiLU it fuses into the mat-mul that reads it.

use super::grid;
use crate::compute::gpu::bindings::Resource;
use crate::compute::gpu::fusion::Pending;
use crate::compute::gpu::kernels::Layout;
use crate::compute::gpu::GpuBackend;
use crate::compute::{ActId, Activation, BackendResult};

/// The shader.
pub const SOURCE: &str = include_str!("../../../../../shaders/glu.wgsl");
/// It reads the gate and up rows, and writes the product.
pub const LAYOUT: Layout = Layout::R2W1;

uniform! {
    /// `glu.wgsl`'s parameters.
    in SOURCE => {
        /// Elements.
        count: u32,
        /// Workgroups along x.
        nx: u32,
        /// 1: GELU(tanh); 0: SiLU.
        gelu: u32,
    }
}

/// Holds the product back for fusion.
pub fn hold(gpu: &mut GpuBackend, gate: ActId, up: ActId, act: Activation, rows: usize, out: ActId) -> BackendResult {
    gpu.check()?;
    gpu.record_pending()?;
    gpu.pending = Some(Pending::Glu { gate, up, act, rows, out });
    Ok(())
}

/// Records the product as a dispatch of its own.
pub fn record(gpu: &mut GpuBackend, gate: ActId, up: ActId, act: Activation, rows: usize, out: ActId) -> BackendResult {
    let count = rows * gpu.act(gate).cols;
    let (nx, ny) = grid(count.div_ceil(256));
    let kernel = gpu.kernels.glu.clone();
    let params = Params { count: count as u32, nx, gelu: (act == Activation::GeluTanh) as u32 };
    gpu.dispatch(&kernel, &[Resource::Act(gate), Resource::Act(up), Resource::Act(out)], params, (nx, ny, 1))
}
