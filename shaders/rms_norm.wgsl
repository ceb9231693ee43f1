// out[g] (+)= x[g] / rms(x[g]) * weight, one workgroup per group of `cols` values (a row, or
// one head of it).

struct Params {
    cols: u32,
    eps: f32,
    accumulate: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wid.x * p.cols;
    var s = 0.0;
    for (var c = li; c < p.cols; c += WG) {
        let v = x[base + c];
        s += v * v;
    }
    sums[li] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if li < k {
            sums[li] += sums[li + k];
        }
        workgroupBarrier();
    }
    let scale = inverseSqrt(sums[0] / f32(p.cols) + p.eps);
    for (var c = li; c < p.cols; c += WG) {
        let v = x[base + c] * scale * weight[c];
        out[base + c] = select(v, out[base + c] + v, p.accumulate != 0u);
    }
}
