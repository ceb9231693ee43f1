//! Host-side tensors the guest holds handles to: ranges of the mapped model file, or f32 buffers.

use crate::compute::cpu::WeightView;
use crate::compute::quant::WeightType;

/// Where a tensor's elements live.
pub enum Storage {
    /// A range of the memory-mapped model file.
    Mapped {
        /// Storage type.
        ty: WeightType,
        /// Byte offset in the file.
        offset: usize,
        /// Byte length.
        len: usize,
    },
    /// An f32 buffer owned by the session.
    Host(Vec<f32>),
}

/// A 2-D tensor behind a guest handle.
pub struct Tensor {
    /// Rows.
    pub rows: usize,
    /// Elements per row.
    pub cols: usize,
    /// The elements.
    pub storage: Storage,
}

impl Tensor {
    /// Elements in the tensor.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// A weight view over `model`'s bytes, or `None` for activations.
    pub fn weight<'a>(&self, model: &'a [u8]) -> Option<WeightView<'a>> {
        match self.storage {
            Storage::Mapped { ty, offset, len } => {
                Some(WeightView { ty, rows: self.rows, cols: self.cols, data: &model[offset..offset + len] })
            }
            Storage::Host(_) => None,
        }
    }

    /// The f32 elements, or `None` for weights.
    pub fn host(&self) -> Option<&[f32]> {
        match &self.storage {
            Storage::Host(v) => Some(v),
            Storage::Mapped { .. } => None,
        }
    }
}
