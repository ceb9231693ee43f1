// dst[dst_at .. dst_at + count] = src[src_at .. src_at + count].

struct Params {
    count: u32,
    src_at: u32,
    dst_at: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < p.count {
        dst[p.dst_at + gid.x] = src[p.src_at + gid.x];
    }
}
