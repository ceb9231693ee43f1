//! Kernel backends behind the guest's `compute` interface.

pub mod cpu;
pub mod packed;
pub mod pool;
pub mod quant;
pub mod simd;
