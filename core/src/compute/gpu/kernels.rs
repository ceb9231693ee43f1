//! The compute pipelines, built once per device from `shaders/`.

use std::borrow::Cow;
use std::num::NonZeroU64;

/// Bytes of one op's parameters (a uniform struct of at most 16 words).
pub const PARAMS_BYTES: u64 = 64;

/// Weight-reading shaders are prefixed with the shared weight layout.
const QUANT: &str = include_str!("../../../../shaders/quant.wgsl");

/// Which storage buffers a kernel binds, in binding order from 1 (binding 0 is its parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Reads 1, writes 1.
    R1W1,
    /// Reads 2, writes 1.
    R2W1,
    /// Reads 3, writes 1.
    R3W1,
    /// Writes 1 (in place).
    W1,
    /// Reads 3, writes 4 (attention: queries, new keys/values; caches, output, partial sums).
    R3W4,
}

impl Layout {
    fn access(self) -> &'static [bool] {
        match self {
            Layout::R1W1 => &[true, false],
            Layout::R2W1 => &[true, true, false],
            Layout::R3W1 => &[true, true, true, false],
            Layout::W1 => &[false],
            Layout::R3W4 => &[true, true, true, false, false, false, false],
        }
    }
}

/// One kernel: its pipeline and how it binds.
#[derive(Clone)]
pub struct Kernel {
    /// The pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its bind group layout.
    pub layout: Layout,
}

/// Index of a weight format in the per-format kernel arrays: 4-bit, 8-bit, f32.
pub fn format_index(bits: u32) -> usize {
    match bits {
        4 => 0,
        8 => 1,
        _ => 2,
    }
}

/// Every pipeline the backend records.
pub struct Kernels {
    /// Bind group layouts by [`Layout`].
    pub layouts: Vec<(Layout, wgpu::BindGroupLayout)>,
    /// Mat-vec (one token per workgroup) by weight format.
    pub matvec: [Kernel; 3],
    /// Mat-mul (tiles of eight tokens) by weight format.
    pub matmul: [Kernel; 3],
    /// Embedding row lookup by weight format.
    pub embed: [Kernel; 3],
    /// RMSNorm.
    pub rms_norm: Kernel,
    /// Rotary embedding.
    pub rope: Kernel,
    /// Key/value store into the caches.
    pub kv_store: Kernel,
    /// Attention over spans of the cache.
    pub attention: Kernel,
    /// Merges attention's spans.
    pub attention_combine: Kernel,
    /// SiLU · mul.
    pub silu_mul: Kernel,
    /// Row copy.
    pub copy_row: Kernel,
    /// Repetition penalty.
    pub penalize: Kernel,
    /// Top-k, one segment per workgroup.
    pub top_k: Kernel,
}

/// Tokens per workgroup of the mat-mul kernel (its `TILE`).
pub const MATMUL_TILE: u32 = 8;

fn bind_group_layout(device: &wgpu::Device, layout: Layout) -> wgpu::BindGroupLayout {
    let storage = layout.access().iter().enumerate().map(|(i, &read_only)| wgpu::BindGroupLayoutEntry {
        binding: i as u32 + 1,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    });
    let params = wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: NonZeroU64::new(PARAMS_BYTES),
        },
        count: None,
    };
    let entries: Vec<_> = std::iter::once(params).chain(storage).collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("murmur"), entries: &entries })
}

struct Builder<'a> {
    device: &'a wgpu::Device,
    layouts: Vec<(Layout, wgpu::BindGroupLayout)>,
}

impl Builder<'_> {
    fn layout(&mut self, layout: Layout) -> wgpu::BindGroupLayout {
        if let Some((_, l)) = self.layouts.iter().find(|(k, _)| *k == layout) {
            return l.clone();
        }
        let l = bind_group_layout(self.device, layout);
        self.layouts.push((layout, l.clone()));
        l
    }

    fn kernel(&mut self, name: &str, source: &str, entry: &str, layout: Layout, constants: &[(&str, f64)]) -> Kernel {
        let bgl = self.layout(layout);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(Cow::Owned(source.to_string())),
        });
        let pl = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Every shader writes its shared memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        Kernel { pipeline, layout }
    }

    fn per_format(&mut self, name: &str, source: &str, layout: Layout, extra: &[(&str, f64)]) -> [Kernel; 3] {
        let source = format!("{QUANT}\n{source}");
        [4.0, 8.0, 32.0].map(|bits| {
            let constants: Vec<(&str, f64)> = std::iter::once(("BITS", bits)).chain(extra.iter().copied()).collect();
            self.kernel(name, &source, "main", layout, &constants)
        })
    }
}

impl Kernels {
    /// Compiles every shader for `device` (once per backend; drivers cache the binaries).
    pub fn new(device: &wgpu::Device) -> Self {
        let mut b = Builder { device, layouts: Vec::new() };
        let matmul_src = include_str!("../../../../shaders/matmul.wgsl");
        let attention = include_str!("../../../../shaders/attention.wgsl");
        let matvec = b.per_format("matvec", matmul_src, Layout::R3W1, &[("TILE", 1.0)]);
        let matmul = b.per_format("matmul", matmul_src, Layout::R3W1, &[("TILE", MATMUL_TILE as f64)]);
        let embed = b.per_format("embed", include_str!("../../../../shaders/embed.wgsl"), Layout::R3W1, &[]);
        Self {
            matvec,
            matmul,
            embed,
            rms_norm: b.kernel("rms_norm", include_str!("../../../../shaders/rms_norm.wgsl"), "main", Layout::R2W1, &[]),
            rope: b.kernel("rope", include_str!("../../../../shaders/rope.wgsl"), "main", Layout::W1, &[]),
            kv_store: b.kernel("kv_store", attention, "store", Layout::R3W4, &[]),
            attention: b.kernel("attention", attention, "main", Layout::R3W4, &[]),
            attention_combine: b.kernel("attention_combine", attention, "combine", Layout::R3W4, &[]),
            silu_mul: b.kernel("silu_mul", include_str!("../../../../shaders/silu_mul.wgsl"), "main", Layout::R2W1, &[]),
            copy_row: b.kernel("copy_row", include_str!("../../../../shaders/copy_row.wgsl"), "main", Layout::R1W1, &[]),
            penalize: b.kernel("penalize", include_str!("../../../../shaders/penalize.wgsl"), "main", Layout::R1W1, &[]),
            top_k: b.kernel("top_k", include_str!("../../../../shaders/top_k.wgsl"), "main", Layout::R1W1, &[]),
            layouts: b.layouts,
        }
    }

    /// The bind group layout of `layout`.
    pub fn layout(&self, layout: Layout) -> &wgpu::BindGroupLayout {
        &self.layouts.iter().find(|(k, _)| *k == layout).expect("every layout in use was built").1
    }
}
