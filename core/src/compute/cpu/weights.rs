//! The CPU's one copy of a model's weights, shared by every session of that model: each
//! quantised weight packed for the kernels (see [`super::packed`]), each float one as the file
//! stores it. Weights are read from the file when the guest first names them, a slice at a time,
//! so neither the whole file nor a whole raw weight is ever held beside the packed copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::kernels::{CpuWeight, FileRows, FloatWeight, WeightView};
use super::packed::PackedWeight;
use crate::compute::model_file::ModelFile;
use crate::compute::{BackendError, BackendResult, WeightHolder, WeightSpec};

/// Raw bytes read from the file at a time while packing.
const SLICE: usize = 1 << 20;

/// The weights of one model for the CPU kernels.
pub struct CpuWeights {
    model: Arc<ModelFile>,
    held: Mutex<Held>,
    budget: usize,
}

#[derive(Default)]
struct Held {
    weights: HashMap<WeightSpec, CpuWeight>,
    bytes: usize,
}

impl CpuWeights {
    /// An empty store over `model`, whose packed weights stay within
    /// [`WeightHolder::CpuPacked`]'s cap however many overlapping ranges a guest names.
    pub fn new(model: Arc<ModelFile>) -> Self {
        let budget = WeightHolder::CpuPacked.cap(model.len());
        Self { model, held: Mutex::default(), budget }
    }

    /// The file the weights come from.
    pub fn model(&self) -> &Arc<ModelFile> {
        &self.model
    }

    /// Bytes the weights held so far take.
    pub fn bytes(&self) -> usize {
        crate::sync::lock(&self.held).bytes
    }

    /// The weight at `spec` (a range the host checked), read and packed on first use.
    pub fn get(&self, spec: WeightSpec) -> BackendResult<CpuWeight> {
        let mut held = crate::sync::lock(&self.held);
        if let Some(w) = held.weights.get(&spec) {
            return Ok(w.clone());
        }
        let size = match spec.ty.family() {
            Some(_) => PackedWeight::size_of(spec.ty, spec.rows, spec.cols),
            None => spec.len(),
        };
        if held.bytes + size > self.budget {
            return Err(BackendError::Exhausted(format!(
                "a {}x{} weight would take the CPU's weights past their {}-byte budget",
                spec.rows, spec.cols, self.budget
            )));
        }
        let weight = self.read(spec)?;
        held.bytes += size;
        held.weights.insert(spec, weight.clone());
        Ok(weight)
    }

    fn read(&self, spec: WeightSpec) -> BackendResult<CpuWeight> {
        let WeightSpec { ty, rows, cols, offset } = spec;
        if ty.family().is_none() {
            let data = self.model.read(offset as u64, spec.len())?;
            return Ok(CpuWeight::Float(FloatWeight { ty, rows, cols, data: data.into() }));
        }
        let row_bytes = ty.row_bytes(cols).expect("checked by the host");
        let per_slice = (SLICE / row_bytes).max(1);
        let mut packed = PackedWeight::zeroed(ty, rows, cols);
        let mut slice = vec![0; per_slice.min(rows) * row_bytes];
        for first in (0..rows).step_by(per_slice) {
            let n = per_slice.min(rows - first);
            let bytes = &mut slice[..n * row_bytes];
            self.model.read_at((offset + first * row_bytes) as u64, bytes)?;
            packed.pack_rows(first, WeightView { ty, rows: n, cols, data: bytes });
        }
        let exact_rows = (!PackedWeight::exact(ty)).then(|| FileRows { model: Arc::clone(&self.model), offset });
        Ok(CpuWeight::Packed(Arc::new(packed), exact_rows))
    }
}
