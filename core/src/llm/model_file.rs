//! Opening the model file: it must exist, parse as far as the host reads it, and fit in memory.

use std::path::Path;
use std::sync::Arc;

use super::LlmError;
use crate::compute::{CpuWeights, ModelFile};

/// Opens the model file with an empty store of its CPU weights, after checking that the weights
/// fit in free memory. Nothing is copied yet: the backends read what the guest names.
pub(super) fn open(path: &Path) -> Result<Arc<CpuWeights>, LlmError> {
    let model = ModelFile::open(path).map_err(|reason| LlmError::Open { path: path.to_path_buf(), reason })?;
    fits_in_memory(path, model.len(), available_memory())?;
    Ok(Arc::new(CpuWeights::new(Arc::new(model))))
}

/// Refuses a model of `len` bytes that needs more than `available` bytes (when known): the CPU
/// kernels hold its weights packed, in about its own size (a quarter more for the K-quant
/// scales at most, as for Q4_K_M).
fn fits_in_memory(path: &Path, len: u64, available: Option<u64>) -> Result<(), LlmError> {
    let needed = len + len / 4;
    match available {
        Some(available) if needed > available => Err(LlmError::TooLarge { path: path.to_path_buf(), needed, available }),
        _ => Ok(()),
    }
}

/// Memory the kernel says can be taken without swapping (`MemAvailable`), where it says.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    #[test]
    fn a_model_larger_than_free_memory_is_refused_with_the_figures() {
        let path = Path::new("/models/big.gguf");
        let err = fits_in_memory(path, 4_800_000_000, Some(5_000_000_000)).unwrap_err().to_string();
        assert!(err.contains("/models/big.gguf") && err.contains("6.0 GB") && err.contains("5.0 GB"), "{err}");
        assert!(fits_in_memory(path, 1_000_000_000, Some(6_000_000_000)).is_ok());
        assert!(fits_in_memory(path, 1_000_000_000, None).is_ok(), "unknown free memory does not refuse");
        assert!(available_memory().is_some_and(|b| b > 0), "this Linux machine reports MemAvailable");
    }
}
