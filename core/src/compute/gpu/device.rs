//! Finding an adapter and opening a device with its real limits, and noticing when it fails.

use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// Which adapters may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterPolicy {
    /// Hardware GPUs only (discrete, integrated, virtual): what `auto` uses.
    Hardware,
    /// Any adapter, software rasterisers such as lavapipe last: what `--backend gpu` uses.
    Any,
}

/// An open device and what it failed with, if it failed.
pub struct Gpu {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Adapter name and API, for logs and benchmarks.
    pub description: String,
    /// The limits the device was opened with (the adapter's own).
    pub limits: wgpu::Limits,
    /// Whether passes can be timed.
    pub timestamps: bool,
    failure: Arc<Mutex<Option<String>>>,
}

fn rank(t: wgpu::DeviceType) -> Option<u8> {
    match t {
        wgpu::DeviceType::DiscreteGpu => Some(0),
        wgpu::DeviceType::IntegratedGpu => Some(1),
        wgpu::DeviceType::VirtualGpu => Some(2),
        wgpu::DeviceType::Cpu => Some(3),
        wgpu::DeviceType::Other => None,
    }
}

/// Whether this machine may have a GPU at all, found without starting a graphics loader: on
/// Linux, a DRM render node, an NVIDIA device or WSL's GPU bridge. Where there is none, Vulkan
/// could only find a software rasteriser, and outside a desktop session Mesa's layers print
/// errors about the missing display while looking.
fn may_have_gpu() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let render_node = std::fs::read_dir("/dev/dri")
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("renderD")))
        .unwrap_or(false);
    render_node || ["/dev/nvidia0", "/dev/dxg"].iter().any(|p| std::path::Path::new(p).exists())
}

/// The best adapter `policy` allows, or `None`. Enumerating costs a Vulkan/Metal/DX12 loader
/// start (tens of milliseconds); for hardware only, it is skipped where no GPU device exists.
pub fn find_adapter(policy: AdapterPolicy) -> Option<wgpu::Adapter> {
    if policy == AdapterPolicy::Hardware && !may_have_gpu() {
        tracing::debug!("no GPU device on this machine");
        return None;
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    let best = adapters
        .into_iter()
        .filter_map(|a| rank(a.get_info().device_type).map(|r| (r, a)))
        .filter(|(r, _)| policy == AdapterPolicy::Any || *r < 3)
        .min_by_key(|(r, _)| *r)
        .map(|(_, a)| a);
    if let Some(a) = &best {
        let info = a.get_info();
        tracing::debug!(name = %info.name, kind = ?info.device_type, api = ?info.backend, "GPU adapter");
    }
    best
}

impl Gpu {
    /// Opens `adapter` with its own limits (not WebGPU's defaults) and timestamps when offered.
    pub fn open(adapter: &wgpu::Adapter) -> Result<Self, String> {
        let info = adapter.get_info();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let features = if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() };
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("murmur"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| format!("cannot open {}: {e}", info.name))?;
        let failure = Arc::new(Mutex::new(None));
        let lost = Arc::clone(&failure);
        device.set_device_lost_callback(move |reason, msg| {
            lock(&lost).get_or_insert_with(|| format!("the device was lost ({reason:?}) {msg}"));
        });
        let errors = Arc::clone(&failure);
        device.on_uncaptured_error(Arc::new(move |e| {
            lock(&errors).get_or_insert_with(|| format!("the device reported an error: {e}"));
        }));
        let description = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
        Ok(Self { device, queue, description, limits, timestamps, failure })
    }

    /// What the device failed with, if it did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Destroys the device, as a driver reset would: every later op fails. For fault injection.
    pub fn destroy(&self) {
        self.device.destroy();
    }
}
