//! What an op binds and how one dispatch of it is recorded: buffers named by [`Resource`], bind
//! groups cached by kernel layout and the buffers bound, token ids in the per-submit arena, and
//! the submit that runs what is recorded.

use super::kernels::{Kernel, Layout, PARAMS_BYTES};
use super::ops::Uniform;
use super::{recorder, GpuBackend};
use crate::compute::{ActId, BackendError, BackendResult, WeightId};

/// A device buffer with an id that names it in the bind-group cache.
pub(crate) struct Buf {
    pub(super) buf: wgpu::Buffer,
    pub(super) uid: u64,
}

/// Bind groups are cached by kernel layout and the buffers bound.
pub(super) type BindKey = (Layout, Vec<u64>);

/// A buffer an op binds, named so that the borrow of the backend ends before recording.
#[derive(Clone, Copy)]
pub enum Resource {
    /// Quants of part `.1` of a weight.
    Weight(WeightId, usize),
    /// Scales of part `.1` of a weight.
    WeightScales(WeightId, usize),
    /// An activation.
    Act(ActId),
    /// The per-submit token-id arena.
    Ids,
    /// A top-k scratch buffer.
    TopK(usize),
    /// Attention's partial sums.
    Spans,
    /// A write-only stand-in for an unused output slot.
    Dummy(usize),
}

/// Device scratch that grows to the largest size asked for: top-k's candidates (two, ping-ponged
/// between rounds) and attention's per-span partial sums.
pub(super) struct Scratch {
    pub(super) bufs: Vec<Buf>,
    bytes: u64,
}

impl GpuBackend {
    /// Records one dispatch of `kernel` over `bound` (bindings 1 onwards) with `params`, and
    /// submits the recorded turn once it is whole.
    pub(super) fn dispatch<P: Uniform>(
        &mut self,
        kernel: &Kernel,
        bound: &[Resource],
        params: P,
        groups: (u32, u32, u32),
    ) -> BackendResult {
        const { assert!(std::mem::size_of::<P>() as u64 <= PARAMS_BYTES, "an op's parameters outgrow their slot") };
        self.check()?;
        if self.rec.full(1, 0) {
            self.flush(None)?;
        }
        let group = self.bind(kernel.layout, bound);
        self.rec.record(kernel, group, bytemuck::bytes_of(&params), groups);
        if self.rec.turn_due() {
            self.stats.dispatches += self.rec.len() as u64;
            self.stats.submits += 1;
            self.rec.submit_turn(&self.gpu);
        }
        Ok(())
    }

    /// The buffer `r` names.
    fn resolve(&self, r: Resource) -> &Buf {
        match r {
            Resource::Weight(w, i) => &self.weights[w.0].parts[i].q,
            Resource::WeightScales(w, i) => &self.weights[w.0].parts[i].s,
            Resource::Act(a) => &self.act(a).buf,
            Resource::Ids => &self.rec.ids,
            Resource::TopK(i) => &self.top_k.as_ref().expect("made before use").bufs[i],
            Resource::Spans => &self.spans.as_ref().expect("made before use").bufs[0],
            Resource::Dummy(i) => &self.dummies[i],
        }
    }

    /// The cached bind group of `layout` over `bound` (binding 1 onwards), made on first use.
    fn bind(&mut self, layout: Layout, bound: &[Resource]) -> wgpu::BindGroup {
        let key = (layout, bound.iter().map(|&r| self.resolve(r).uid).collect());
        if let Some(g) = self.binds.get(&key) {
            return g.clone();
        }
        let params =
            wgpu::BufferBinding { buffer: &self.rec.params.buf, offset: 0, size: std::num::NonZeroU64::new(PARAMS_BYTES) };
        let entries: Vec<_> =
            std::iter::once(wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::Buffer(params) })
                .chain(bound.iter().enumerate().map(|(i, &r)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: self.resolve(r).buf.as_entire_binding(),
                }))
                .collect();
        let group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: self.kernels.layout(layout),
            entries: &entries,
        });
        self.binds.insert(key, group.clone());
        group
    }

    /// Stores token ids for the next `dispatches` dispatches (submitting what is recorded first
    /// if they do not fit); returns where they start.
    pub(super) fn ids(&mut self, ids: &[u32], dispatches: usize) -> BackendResult<usize> {
        if ids.len() > recorder::MAX_IDS {
            return Err(BackendError::Exhausted(format!(
                "{} token ids in one op; the GPU backend takes {}",
                ids.len(),
                recorder::MAX_IDS
            )));
        }
        if self.rec.full(dispatches, ids.len()) {
            self.flush(None)?;
        }
        Ok(self.rec.push_ids(ids))
    }

    /// Submits what is recorded; with `read`, copies those bytes back after it and returns them.
    pub(super) fn flush(&mut self, read: Option<(&wgpu::Buffer, u64)>) -> BackendResult<Vec<u8>> {
        self.check()?;
        self.record_pending()?;
        let dispatches = self.rec.len() as u64;
        let submitted = self.rec.submit(&self.gpu, read);
        // A lost device says why better than the failed read-back does.
        self.check()?;
        let s = submitted.map_err(|e| BackendError::DeviceLost(e.to_string()))?;
        self.stats.dispatches += dispatches;
        self.stats.submits += 1;
        self.stats.device_ns += s.device_ns;
        self.stats.encode_ns += s.encode_ns;
        self.stats.wait_ns += s.wait_ns;
        self.check()?;
        Ok(s.bytes)
    }

    /// Makes `slot` hold `count` buffers of at least `bytes` each.
    pub(super) fn scratch(&mut self, slot: fn(&mut Self) -> &mut Option<Scratch>, count: usize, bytes: u64) {
        if slot(self).as_ref().is_none_or(|s| s.bytes < bytes) {
            let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
            let bufs = (0..count).map(|_| self.buffer(bytes, usage)).collect();
            if let Some(old) = slot(self).replace(Scratch { bufs, bytes }) {
                self.forget(&old.bufs.iter().map(|b| b.uid).collect::<Vec<_>>());
            }
        }
    }

    /// Drops cached bind groups that use any of `uids`.
    pub(super) fn forget(&mut self, uids: &[u64]) {
        self.binds.retain(|(_, bound), _| !bound.iter().any(|u| uids.contains(u)));
    }
}
