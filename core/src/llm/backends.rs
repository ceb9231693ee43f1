//! Which kernels serve a session: `auto` takes a hardware GPU when there is one (never a
//! software rasteriser such as lavapipe) and the CPU otherwise; `gpu` and `cpu` force one.

use std::sync::{Arc, OnceLock};

use super::{BackendChoice, LlmConfig, LlmError};
use crate::compute::gpu::{AdapterPolicy, GpuOptions};
use crate::compute::{Backend, CpuBackend, CpuWeights, GpuBackend};

/// Opens the backend `cfg` asks for over the model of `weights` (the CPU's store of it).
pub fn open(cfg: &LlmConfig, weights: &Arc<CpuWeights>) -> Result<Box<dyn Backend>, LlmError> {
    let model = weights.model();
    let cpu = || Box::new(CpuBackend::new(Arc::clone(weights), cfg.threads)) as Box<dyn Backend>;
    match cfg.backend {
        BackendChoice::Cpu => Ok(cpu()),
        BackendChoice::Gpu => {
            let options = GpuOptions { profile: cfg.profile, turn: cfg.gpu_turn, ..GpuOptions::new(AdapterPolicy::Any) };
            let gpu = GpuBackend::new(Arc::clone(model), options).map_err(|e| LlmError::NoGpu(e.to_string()))?;
            Ok(Box::new(gpu))
        }
        BackendChoice::Auto => {
            // Probing loads the Vulkan/Metal/DX12 runtime: remember a machine without a GPU.
            static NO_HARDWARE: OnceLock<bool> = OnceLock::new();
            if *NO_HARDWARE.get().unwrap_or(&false) {
                return Ok(cpu());
            }
            let options = GpuOptions { profile: cfg.profile, turn: cfg.gpu_turn, ..GpuOptions::new(AdapterPolicy::Hardware) };
            match GpuBackend::new(Arc::clone(model), options) {
                Ok(gpu) => Ok(Box::new(gpu)),
                Err(e) => {
                    tracing::info!("using the CPU: {e}");
                    let _ = NO_HARDWARE.set(true);
                    Ok(cpu())
                }
            }
        }
    }
}
