//! The compute pipelines, built once per device from the shaders each op owns (see [`super::ops`]).

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::Arc;

use super::ops::matmul::MatmulVariant;
use super::ops::{attention, bias, copy_row, embed, glu, matmul, norm, rope, sampling};

/// Bytes of one op's parameters (a uniform struct of at most 16 words).
pub const PARAMS_BYTES: u64 = 64;

/// Weight-reading shaders are prefixed with the shared weight layout.
const QUANT: &str = include_str!("../../../../shaders/quant.wgsl");
/// Rotating shaders are prefixed with the rotation.
const ROTATION: &str = include_str!("../../../../shaders/rotation.wgsl");

/// Which storage buffers a kernel binds, in binding order from 1 (binding 0 is its parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Reads 1, writes 1.
    R1W1,
    /// Reads 2, writes 1.
    R2W1,
    /// Reads 3, writes 1.
    R3W1,
    /// Writes 2 (in place), reads 1.
    W2R1,
    /// Reads 3, writes 4 (attention: queries, new keys/values; caches, output, partial sums).
    R3W4,
    /// Mat-mul: reads three weights' quants and scales, the input and its auxiliary; writes
    /// three outputs and the made input.
    Matmul,
}

impl Layout {
    fn access(self) -> &'static [bool] {
        match self {
            Layout::R1W1 => &[true, false],
            Layout::R2W1 => &[true, true, false],
            Layout::R3W1 => &[true, true, true, false],
            Layout::W2R1 => &[false, false, true],
            Layout::R3W4 => &[true, true, true, false, false, false, false],
            Layout::Matmul => &[true, true, true, true, true, true, true, true, false, false, false, false],
        }
    }
}

/// One kernel: its pipeline and how it binds.
#[derive(Clone)]
pub struct Kernel {
    /// What it is, for profiles.
    pub name: Arc<str>,
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
    /// Mat-mul pipelines, built on first use of each variant.
    matmul: std::collections::HashMap<MatmulVariant, Kernel>,
    device: wgpu::Device,
    /// Embedding row lookup by weight format.
    pub embed: [Kernel; 3],
    /// RMSNorm.
    pub rms_norm: Kernel,
    /// Rotary embedding.
    pub rope: Kernel,
    /// Attention over spans of the cache and the merge of the spans, by head width, built on
    /// first use.
    attention: std::collections::HashMap<usize, (Kernel, Kernel)>,
    /// The gated feed-forward product, `act(gate) · up`.
    pub glu: Kernel,
    /// A bias added to rows in place.
    pub add_bias: Kernel,
    /// Row copy.
    pub copy_row: Kernel,
    /// Repetition penalty.
    pub penalize: Kernel,
    /// A grammar's token mask.
    pub mask: Kernel,
    /// Top-k, one segment per workgroup.
    pub top_k: Kernel,
}

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
    layouts: &'a mut Vec<(Layout, wgpu::BindGroupLayout)>,
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
        Kernel { name: name.into(), pipeline, layout }
    }

    fn per_format(&mut self, name: &str, source: &str, layout: Layout) -> [Kernel; 3] {
        let source = format!("{QUANT}\n{source}");
        [4.0, 8.0, 32.0].map(|bits| self.kernel(&format!("{name} q{bits}"), &source, "main", layout, &[("BITS", bits)]))
    }
}

impl Kernels {
    /// Compiles every shader for `device` (once per backend; drivers cache the binaries).
    pub fn new(device: &wgpu::Device) -> Self {
        let mut layouts = Vec::new();
        let mut b = Builder { device, layouts: &mut layouts };
        let embed = b.per_format("embed", embed::SOURCE, embed::LAYOUT);
        let rope_source = format!("{ROTATION}\n{}", rope::SOURCE);
        Self {
            matmul: std::collections::HashMap::new(),
            device: device.clone(),
            embed,
            rms_norm: b.kernel("rms_norm", norm::SOURCE, "main", norm::LAYOUT, &[]),
            rope: b.kernel("rope", &rope_source, "main", rope::LAYOUT, &[]),
            attention: std::collections::HashMap::new(),
            glu: b.kernel("glu", glu::SOURCE, "main", glu::LAYOUT, &[]),
            add_bias: b.kernel("add_bias", bias::SOURCE, "main", bias::LAYOUT, &[]),
            copy_row: b.kernel("copy_row", copy_row::SOURCE, "main", copy_row::LAYOUT, &[]),
            penalize: b.kernel("penalize", sampling::penalize::SOURCE, "main", sampling::LAYOUT, &[]),
            mask: b.kernel("mask", sampling::mask::SOURCE, "main", sampling::LAYOUT, &[]),
            top_k: b.kernel("top_k", sampling::top_k::SOURCE, "main", sampling::LAYOUT, &[]),
            layouts,
        }
    }

    /// The attention pipelines (attend, combine) for heads `head_dim` wide, compiled on first use.
    pub fn attention(&mut self, head_dim: usize) -> (Kernel, Kernel) {
        if let Some(k) = self.attention.get(&head_dim) {
            return k.clone();
        }
        let constants = [("HEAD_DIM", head_dim as f64)];
        let mut b = Builder { device: &self.device, layouts: &mut self.layouts };
        let k = (
            b.kernel("attention", attention::SOURCE, "main", attention::LAYOUT, &constants),
            b.kernel("attention_combine", attention::SOURCE, "combine", attention::LAYOUT, &constants),
        );
        self.attention.insert(head_dim, k.clone());
        k
    }

    /// The mat-mul pipeline for `v`, compiled on its first use.
    pub fn matmul(&mut self, v: MatmulVariant) -> Kernel {
        if let Some(k) = self.matmul.get(&v) {
            return k.clone();
        }
        let source = format!("{QUANT}\n{ROTATION}\n{}", matmul::SOURCE);
        let constants = [
            ("BITS", v.bits as f64),
            ("TILE", v.tile as f64),
            ("INPUT", v.input as u32 as f64),
            ("COUNT", v.count as f64),
            ("LANES", v.lanes as f64),
            ("COLS", v.cols as f64),
        ];
        let (entry, shape) =
            if v.tiled { ("tiles", "tiled".to_string()) } else { ("main", format!("tile {} lanes {}", v.tile, v.lanes)) };
        let name = format!("matmul q{} ×{} {:?} {shape} cols {}", v.bits, v.count, v.input, v.cols);
        let mut b = Builder { device: &self.device, layouts: &mut self.layouts };
        let k = b.kernel(&name, &source, entry, matmul::LAYOUT, &constants);
        self.matmul.insert(v, k.clone());
        k
    }

    /// The bind group layout of `layout`.
    pub fn layout(&self, layout: Layout) -> &wgpu::BindGroupLayout {
        &self.layouts.iter().find(|(k, _)| *k == layout).expect("every layout in use was built").1
    }
}
