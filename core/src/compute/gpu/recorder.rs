//! Recording ops into one compute pass and submitting it with a small read-back.
//!
//! Each dispatch's parameters go to its own slot of one uniform buffer (bound with a dynamic
//! offset), and token ids to one id buffer, so a whole forward pass is written with two buffer
//! writes and one submit.

use std::collections::HashMap;

use super::bindings::Buf;
use super::device::Gpu;
use super::kernels::PARAMS_BYTES;
use crate::compute::KernelTime;

/// Dispatches one submit can hold; more are submitted in turns.
const MAX_DISPATCHES: u64 = 4096;
/// Token ids one submit can hold.
pub const MAX_IDS: usize = 1 << 16;

/// What a submit brought back, and how long it took.
pub struct Submitted {
    /// The bytes read back.
    pub bytes: Vec<u8>,
    /// Device time of the pass (0 where it cannot be timed).
    pub device_ns: u64,
    /// Host time encoding and submitting.
    pub encode_ns: u64,
    /// Host time waiting for the device.
    pub wait_ns: u64,
}

struct Dispatch {
    name: std::sync::Arc<str>,
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    offset: u32,
    groups: (u32, u32, u32),
}

/// Pass timestamps, where the device has them.
struct Timer {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    period_ns: f64,
}

/// Per-dispatch timestamps: each dispatch in its own timed pass.
struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    period_ns: f64,
    totals: HashMap<std::sync::Arc<str>, (u64, u64)>,
}

/// Dispatches a profiled submit can time (two timestamps each, within wgpu's 4096 queries).
const PROFILED_DISPATCHES: u64 = 2048;

/// The ops recorded since the last submit.
pub struct Recorder {
    /// Parameter slots (uniform, dynamic offsets).
    pub params: Buf,
    /// Token ids (storage).
    pub ids: Buf,
    stride: u64,
    param_bytes: Vec<u8>,
    id_words: Vec<u32>,
    dispatches: Vec<Dispatch>,
    staging: Option<wgpu::Buffer>,
    timer: Option<Timer>,
    profiler: Option<Profiler>,
}

impl Recorder {
    /// Buffers for one submit's parameters and ids; slots are `align` apart. With `profile`
    /// (and timestamps), every dispatch is timed on its own.
    pub fn new(gpu: &Gpu, align: u64, profile: bool) -> Self {
        let stride = PARAMS_BYTES.next_multiple_of(align.max(1));
        let buffer = |size, usage, uid| Buf {
            buf: gpu.device.create_buffer(&wgpu::BufferDescriptor { label: None, size, usage, mapped_at_creation: false }),
            uid,
        };
        let params = buffer(stride * MAX_DISPATCHES, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST, u64::MAX);
        let ids = buffer(MAX_IDS as u64 * 4, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST, u64::MAX - 1);
        let timer = gpu.timestamps.then(|| Timer {
            queries: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: None,
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            period_ns: gpu.queue.get_timestamp_period() as f64,
        });
        let profiler = (profile && gpu.timestamps).then(|| {
            let bytes = PROFILED_DISPATCHES * 16;
            let buffer = |usage| {
                gpu.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: bytes, usage, mapped_at_creation: false })
            };
            Profiler {
                queries: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: None,
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * PROFILED_DISPATCHES as u32,
                }),
                resolve: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
                staging: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
                period_ns: gpu.queue.get_timestamp_period() as f64,
                totals: HashMap::new(),
            }
        });
        Self {
            params,
            ids,
            stride,
            param_bytes: Vec::new(),
            id_words: Vec::new(),
            dispatches: Vec::new(),
            staging: None,
            timer,
            profiler,
        }
    }

    /// Device time per kernel so far (profiling only), slowest first.
    pub fn profile(&self) -> Vec<KernelTime> {
        let mut v: Vec<KernelTime> = self
            .profiler
            .iter()
            .flat_map(|p| &p.totals)
            .map(|(name, &(dispatches, ns))| KernelTime { name: name.to_string(), dispatches, ns })
            .collect();
        v.sort_by_key(|k| std::cmp::Reverse(k.ns));
        v
    }

    /// Dispatches recorded and not yet submitted.
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    /// Whether `dispatches` more dispatches, with `ids` more token ids, need a submit first.
    pub fn full(&self, dispatches: usize, ids: usize) -> bool {
        let most = if self.profiler.is_some() { PROFILED_DISPATCHES } else { MAX_DISPATCHES };
        (self.dispatches.len() + dispatches) as u64 > most || self.id_words.len() + ids > MAX_IDS
    }

    /// Stores `ids` for the next dispatch; returns where they start.
    pub fn push_ids(&mut self, ids: &[u32]) -> usize {
        let at = self.id_words.len();
        self.id_words.extend_from_slice(ids);
        at
    }

    /// Records a dispatch.
    pub fn record(&mut self, kernel: &super::kernels::Kernel, group: wgpu::BindGroup, params: &[u8], groups: (u32, u32, u32)) {
        let offset = self.param_bytes.len() as u32;
        self.param_bytes.extend_from_slice(params);
        self.param_bytes.resize(offset as usize + self.stride as usize, 0);
        self.dispatches.push(Dispatch { name: kernel.name.clone(), pipeline: kernel.pipeline.clone(), group, offset, groups });
    }

    /// Submits the recorded pass; with `read`, copies the first `n` bytes of that buffer back.
    pub fn submit(&mut self, gpu: &Gpu, read: Option<(&wgpu::Buffer, u64)>) -> Result<Submitted, String> {
        let start = std::time::Instant::now();
        let (device, queue) = (&gpu.device, &gpu.queue);
        if !self.param_bytes.is_empty() {
            queue.write_buffer(&self.params.buf, 0, &self.param_bytes);
        }
        if !self.id_words.is_empty() {
            let bytes: Vec<u8> = self.id_words.iter().flat_map(|w| w.to_le_bytes()).collect();
            queue.write_buffer(&self.ids.buf, 0, &bytes);
        }
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        if self.profiler.is_some() {
            return self.submit_profiled(gpu, encoder, read, start);
        }
        let timed = self.timer.as_ref().filter(|_| !self.dispatches.is_empty());
        {
            let timestamp_writes = timed.map(|t| wgpu::ComputePassTimestampWrites {
                query_set: &t.queries,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
            for d in &self.dispatches {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.group, &[d.offset]);
                pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
            }
        }
        self.read_back(gpu, encoder, timed.is_some(), read, start)
    }

    /// Copies the pass's timestamps (when `timed`) and `read` back after submitting `encoder`.
    fn read_back(
        &mut self,
        gpu: &Gpu,
        mut encoder: wgpu::CommandEncoder,
        timed: bool,
        read: Option<(&wgpu::Buffer, u64)>,
        start: std::time::Instant,
    ) -> Result<Submitted, String> {
        let (device, queue) = (&gpu.device, &gpu.queue);
        let timed = self.timer.as_ref().filter(|_| timed);
        let n = read.map_or(0, |(_, n)| n);
        let staging_bytes = 16 + n;
        if self.staging.as_ref().is_none_or(|s| s.size() < staging_bytes) {
            self.staging = Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size: staging_bytes.next_power_of_two(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let staging = self.staging.as_ref().expect("made above");
        if let Some(t) = timed {
            encoder.resolve_query_set(&t.queries, 0..2, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, staging, 0, 16);
        }
        if let Some((buf, n)) = read {
            encoder.copy_buffer_to_buffer(buf, 0, staging, 16, n);
        }
        queue.submit([encoder.finish()]);
        let submitted = std::time::Instant::now();
        let encode_ns = (submitted - start).as_nanos() as u64;
        self.param_bytes.clear();
        self.id_words.clear();
        self.dispatches.clear();
        if read.is_none() && timed.is_none() {
            return Ok(Submitted { bytes: Vec::new(), device_ns: 0, encode_ns, wait_ns: 0 });
        }
        let data = map_read(gpu, staging, staging_bytes)?;
        let wait_ns = submitted.elapsed().as_nanos() as u64;
        let ns = match timed {
            Some(t) => {
                let stamp = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
                (stamp(1).saturating_sub(stamp(0)) as f64 * t.period_ns) as u64
            }
            None => 0,
        };
        Ok(Submitted { bytes: data[16..].to_vec(), device_ns: ns, encode_ns, wait_ns })
    }

    /// Like [`Recorder::submit`], each dispatch in its own pass between two timestamps.
    fn submit_profiled(
        &mut self,
        gpu: &Gpu,
        mut encoder: wgpu::CommandEncoder,
        read: Option<(&wgpu::Buffer, u64)>,
        start: std::time::Instant,
    ) -> Result<Submitted, String> {
        let p = self.profiler.as_mut().expect("profiling");
        let n = self.dispatches.len() as u32;
        for (i, d) in self.dispatches.iter().enumerate() {
            let timestamp_writes = wgpu::ComputePassTimestampWrites {
                query_set: &p.queries,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            };
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: Some(timestamp_writes) });
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.group, &[d.offset]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
        }
        if n > 0 {
            encoder.resolve_query_set(&p.queries, 0..2 * n, &p.resolve, 0);
            encoder.copy_buffer_to_buffer(&p.resolve, 0, &p.staging, 0, 16 * n as u64);
        }
        let names: Vec<_> = self.dispatches.iter().map(|d| d.name.clone()).collect();
        let result = self.read_back(gpu, encoder, false, read, start)?;
        let p = self.profiler.as_mut().expect("profiling");
        if n > 0 {
            let data = map_read(gpu, &p.staging, 16 * n as u64)?;
            let stamp = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            for (i, name) in names.into_iter().enumerate() {
                let ns = (stamp(2 * i + 1).saturating_sub(stamp(2 * i)) as f64 * p.period_ns) as u64;
                let e = p.totals.entry(name).or_default();
                *e = (e.0 + 1, e.1 + ns);
            }
        }
        Ok(result)
    }
}

/// Waits for the device and copies out the first `bytes` of the mappable `buffer`.
fn map_read(gpu: &Gpu, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, String> {
    let slice = buffer.slice(0..bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| format!("waiting for the GPU failed: {e}"))?;
    rx.recv().map_err(|_| "the read-back was dropped".to_string())?.map_err(|e| format!("reading results back failed: {e}"))?;
    let data = slice.get_mapped_range().map_err(|e| format!("reading results back failed: {e}"))?.to_vec();
    buffer.unmap();
    Ok(data)
}
