//! Recording ops into compute passes and submitting them, the last with a small read-back.
//!
//! Each dispatch's parameters go to its own slot of one uniform buffer (bound with a dynamic
//! offset), and token ids to one id buffer, both filled through the whole round (from one
//! read-back to the next), so a slot or id named once stays valid until the round ends. A
//! round goes to the device in turns of [`TURN`] dispatches (by default) as they are
//! recorded: the device runs a forward pass's first layers while the guest still records its
//! last, and only the read-back waits.

use std::collections::HashMap;

use super::bindings::Buf;
use super::device::Gpu;
use super::kernels::PARAMS_BYTES;
use crate::compute::KernelTime;

/// Dispatches one round can hold; more are submitted in rounds.
const MAX_DISPATCHES: u64 = 4096;
/// Token ids one round can hold.
pub const MAX_IDS: usize = 1 << 16;
/// Dispatches recorded before they are submitted without waiting, by default: a llama block
/// is 5, so a turn is about six layers. SmolLM2's decode on an H100 (tok/s): 463 without
/// turns, 442 in turns of 8, 506 of 16, 532 of 32, 529 of 64.
pub const TURN: usize = 32;
/// Passes of one round that are timed (the turns, then the last); past them, a round's turns
/// wait for its read-back.
const TIMED_PASSES: u64 = 256;

/// What a submit brought back, and how long it took.
pub struct Submitted {
    /// The bytes read back.
    pub bytes: Vec<u8>,
    /// Device time of the round's passes (0 where they cannot be timed).
    pub device_ns: u64,
    /// Host time encoding and submitting (the round's turns too).
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

/// Pass timestamps, where the device has them: a pair per pass of the round.
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

/// The ops recorded since the last read-back.
pub struct Recorder {
    /// Parameter slots (uniform, dynamic offsets).
    pub params: Buf,
    /// Token ids (storage).
    pub ids: Buf,
    stride: u64,
    /// The round's parameters and ids, and how many bytes and words of them are on the device.
    param_bytes: Vec<u8>,
    params_sent: usize,
    id_words: Vec<u32>,
    ids_sent: usize,
    /// Recorded and not yet submitted.
    dispatches: Vec<Dispatch>,
    /// Dispatches to a turn (0: none).
    turn: usize,
    /// Passes submitted this round, and the host time they took.
    passes: u32,
    turn_ns: u64,
    staging: Option<wgpu::Buffer>,
    timer: Option<Timer>,
    profiler: Option<Profiler>,
}

impl Recorder {
    /// Buffers for one round's parameters and ids; slots are `align` apart. With `profile`
    /// (and timestamps), every dispatch is timed on its own; otherwise every `turn` dispatches
    /// are submitted as they come (0: none are).
    pub fn new(gpu: &Gpu, align: u64, profile: bool, turn: usize) -> Self {
        let stride = PARAMS_BYTES.next_multiple_of(align.max(1));
        let buffer = |size, usage, uid| Buf {
            buf: gpu.device.create_buffer(&wgpu::BufferDescriptor { label: None, size, usage, mapped_at_creation: false }),
            uid,
        };
        let params = buffer(stride * MAX_DISPATCHES, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST, u64::MAX);
        let ids = buffer(MAX_IDS as u64 * 4, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST, u64::MAX - 1);
        let queries = |count: u64| {
            gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: None,
                ty: wgpu::QueryType::Timestamp,
                count: 2 * count as u32,
            })
        };
        let timestamps = |count: u64, usage| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: 16 * count, usage, mapped_at_creation: false })
        };
        let resolve = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
        let period_ns = gpu.queue.get_timestamp_period() as f64;
        let timer = gpu.timestamps.then(|| Timer {
            queries: queries(TIMED_PASSES),
            resolve: timestamps(TIMED_PASSES, resolve),
            period_ns,
        });
        let profiler = (profile && gpu.timestamps).then(|| Profiler {
            queries: queries(PROFILED_DISPATCHES),
            resolve: timestamps(PROFILED_DISPATCHES, resolve),
            staging: timestamps(PROFILED_DISPATCHES, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            period_ns,
            totals: HashMap::new(),
        });
        Self {
            params,
            ids,
            stride,
            param_bytes: Vec::new(),
            params_sent: 0,
            id_words: Vec::new(),
            ids_sent: 0,
            dispatches: Vec::new(),
            turn,
            passes: 0,
            turn_ns: 0,
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

    /// Whether `dispatches` more dispatches, with `ids` more token ids, need a new round first.
    pub fn full(&self, dispatches: usize, ids: usize) -> bool {
        let most = if self.profiler.is_some() { PROFILED_DISPATCHES } else { MAX_DISPATCHES };
        let slots = self.param_bytes.len() / self.stride as usize;
        (slots + dispatches) as u64 > most || self.id_words.len() + ids > MAX_IDS
    }

    /// Whether the dispatches recorded make a turn, to submit without waiting (never while
    /// profiling, which times each dispatch in a submit of its own).
    pub fn turn_due(&self) -> bool {
        self.profiler.is_none()
            && self.turn > 0
            && self.dispatches.len() >= self.turn
            && u64::from(self.passes) + 1 < TIMED_PASSES
    }

    /// Stores `ids` for a dispatch of this round; returns where they start.
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

    /// Writes the round's parameters and ids that the device does not have yet.
    fn send(&mut self, queue: &wgpu::Queue) {
        if self.param_bytes.len() > self.params_sent {
            queue.write_buffer(&self.params.buf, self.params_sent as u64, &self.param_bytes[self.params_sent..]);
            self.params_sent = self.param_bytes.len();
        }
        if self.id_words.len() > self.ids_sent {
            let words = &self.id_words[self.ids_sent..];
            queue.write_buffer(&self.ids.buf, self.ids_sent as u64 * 4, bytemuck::cast_slice(words));
            self.ids_sent = self.id_words.len();
        }
    }

    /// Encodes the recorded dispatches as the round's next pass, timed where the device can.
    fn encode(&mut self, encoder: &mut wgpu::CommandEncoder) {
        if self.dispatches.is_empty() {
            return;
        }
        let index = 2 * self.passes;
        let timestamp_writes = self.timer.as_ref().map(|t| wgpu::ComputePassTimestampWrites {
            query_set: &t.queries,
            beginning_of_pass_write_index: Some(index),
            end_of_pass_write_index: Some(index + 1),
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
        for d in self.dispatches.drain(..) {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.group, &[d.offset]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
        }
        self.passes += 1;
    }

    /// Sends the round's new parameters and ids, and opens the encoder of the next submit.
    fn next_submit(&mut self, gpu: &Gpu) -> wgpu::CommandEncoder {
        self.send(&gpu.queue);
        gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    /// Submits what is recorded without waiting: a turn of the round.
    pub fn submit_turn(&mut self, gpu: &Gpu) {
        let start = std::time::Instant::now();
        let mut encoder = self.next_submit(gpu);
        self.encode(&mut encoder);
        gpu.queue.submit([encoder.finish()]);
        self.turn_ns += start.elapsed().as_nanos() as u64;
    }

    /// Ends the round: submits what is recorded and, with `read`, copies the first `n` bytes of
    /// that buffer back and waits for them.
    pub fn submit(&mut self, gpu: &Gpu, read: Option<(&wgpu::Buffer, u64)>) -> Result<Submitted, String> {
        let start = std::time::Instant::now();
        let mut encoder = self.next_submit(gpu);
        if self.profiler.is_some() {
            return self.submit_profiled(gpu, encoder, read, start);
        }
        self.encode(&mut encoder);
        self.read_back(gpu, encoder, read, start)
    }

    /// Copies the round's timestamps and `read` back after submitting `encoder`, and starts a
    /// new round.
    fn read_back(
        &mut self,
        gpu: &Gpu,
        mut encoder: wgpu::CommandEncoder,
        read: Option<(&wgpu::Buffer, u64)>,
        start: std::time::Instant,
    ) -> Result<Submitted, String> {
        let (device, queue) = (&gpu.device, &gpu.queue);
        let passes = u64::from(self.passes);
        let timed = self.timer.as_ref().filter(|_| passes > 0);
        let n = read.map_or(0, |(_, n)| n);
        // The timestamps first, then what is read.
        let at = 16 * TIMED_PASSES;
        if self.staging.as_ref().is_none_or(|s| s.size() < at + n) {
            self.staging = Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size: (at + n).next_power_of_two(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let staging = self.staging.as_ref().expect("made above");
        if let Some(t) = timed {
            encoder.resolve_query_set(&t.queries, 0..2 * passes as u32, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, staging, 0, 16 * passes);
        }
        if let Some((buf, n)) = read {
            encoder.copy_buffer_to_buffer(buf, 0, staging, at, n);
        }
        queue.submit([encoder.finish()]);
        let submitted = std::time::Instant::now();
        let encode_ns = (submitted - start).as_nanos() as u64 + self.turn_ns;
        self.param_bytes.clear();
        self.id_words.clear();
        (self.params_sent, self.ids_sent, self.passes, self.turn_ns) = (0, 0, 0, 0);
        if read.is_none() && timed.is_none() {
            return Ok(Submitted { bytes: Vec::new(), device_ns: 0, encode_ns, wait_ns: 0 });
        }
        let data = map_read(gpu, staging, at + n)?;
        let wait_ns = submitted.elapsed().as_nanos() as u64;
        let device_ns = timed.map_or(0, |t| {
            let stamp = |i: u64| u64::from_le_bytes(data[i as usize * 8..i as usize * 8 + 8].try_into().expect("8 bytes"));
            let ticks: u64 = (0..passes).map(|p| stamp(2 * p + 1).saturating_sub(stamp(2 * p))).sum();
            (ticks as f64 * t.period_ns) as u64
        });
        Ok(Submitted { bytes: data[at as usize..].to_vec(), device_ns, encode_ns, wait_ns })
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
        let names: Vec<_> = self.dispatches.drain(..).map(|d| d.name).collect();
        let result = self.read_back(gpu, encoder, read, start)?;
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
