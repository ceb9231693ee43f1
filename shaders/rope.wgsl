// Rotary position embedding in place: one thread per rotated pair.

struct Params {
    cols: u32,
    head_dim: u32,
    pos: u32,
    n: u32,
    base: f32,
    interleaved: u32,
    nx: u32,
}

const TAU: f32 = 6.283185307179586;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.y * p.nx) * 64u + li;
    let half = p.head_dim / 2u;
    let pairs = p.cols / 2u;
    if idx >= p.n * pairs {
        return;
    }
    let t = idx / pairs;
    let head = (idx % pairs) / half;
    let i = idx % half;
    let theta = f32(p.pos + t) * pow(p.base, -2.0 * f32(i) / f32(p.head_dim));
    // Reduce to [-pi, pi) first: GPU sin/cos are only accurate there. theta = a + pi + k tau.
    let a = (fract(theta / TAU) - 0.5) * TAU;
    let c = -cos(a);
    let s = -sin(a);
    let o = t * p.cols + head * p.head_dim;
    var ia = o + i;
    var ib = o + i + half;
    if p.interleaved != 0u {
        ia = o + 2u * i;
        ib = ia + 1u;
    }
    let x0 = x[ia];
    let x1 = x[ib];
    x[ia] = x0 * c - x1 * s;
    x[ib] = x0 * s + x1 * c;
}
