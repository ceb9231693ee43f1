// x[t][c] += bias[c] for the first `count` elements of x (whole rows of `cols`), in place.

struct Params {
    cols: u32,
    count: u32,
    nx: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.x + wid.y * p.nx) * 256u + li;
    if i < p.count {
        x[i] += bias[i % p.cols];
    }
}
