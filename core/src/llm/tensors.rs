//! Host-side records of the tensors the guest holds handles to; the data lives in the backend.

use crate::compute::{ActId, WeightId, WeightSpec};

/// What a tensor is.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A range of the model file, held by the backend as `id`.
    Weight(WeightSpec, WeightId),
    /// An f32 activation held by the backend.
    Activation(ActId),
}

/// A 2-D tensor behind a guest handle.
#[derive(Debug)]
pub struct Tensor {
    /// Rows.
    pub rows: usize,
    /// Elements per row.
    pub cols: usize,
    /// Weight or activation.
    pub kind: Kind,
}

impl Tensor {
    /// Elements in the tensor.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
}
