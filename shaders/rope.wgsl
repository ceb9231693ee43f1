// Rotary position embedding in place, of one tensor or two (queries and keys in one
// dispatch): one thread per rotated pair, its angle divided by its factor where there are
// factors (Llama 3's `rope_freqs`).

struct Params {
    cols: u32,       // row width of `x`
    cols_y: u32,     // row width of `y` (0: no second tensor)
    head_dim: u32,
    pos: u32,
    n: u32,
    base: f32,
    interleaved: u32,
    nx: u32,
    has_factors: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> factors: array<f32>;

fn factor(i: u32) -> f32 {
    if p.has_factors != 0u {
        return factors[i];
    }
    return 1.0;
}

// Where pair `idx` of rows `cols` wide lies, and its rotation.
fn pair(idx: u32, cols: u32) -> vec4<u32> {
    let half = p.head_dim / 2u;
    let pairs = cols / 2u;
    let t = idx / pairs;
    let head = (idx % pairs) / half;
    let i = idx % half;
    let o = t * cols + head * p.head_dim;
    if p.interleaved != 0u {
        return vec4<u32>(o + 2u * i, o + 2u * i + 1u, t, i);
    }
    return vec4<u32>(o + i, o + i + half, t, i);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.y * p.nx) * 64u + li;
    let in_x = p.n * (p.cols / 2u);
    if idx < in_x {
        let at = pair(idx, p.cols);
        let cs = rotation(p.pos + at.z, at.w, p.head_dim, p.base, factor(at.w));
        let x0 = x[at.x];
        let x1 = x[at.y];
        x[at.x] = x0 * cs.x - x1 * cs.y;
        x[at.y] = x0 * cs.y + x1 * cs.x;
    } else if idx < in_x + p.n * (p.cols_y / 2u) {
        let at = pair(idx - in_x, p.cols_y);
        let cs = rotation(p.pos + at.z, at.w, p.head_dim, p.base, factor(at.w));
        let y0 = y[at.x];
        let y1 = y[at.y];
        y[at.x] = y0 * cs.x - y1 * cs.y;
        y[at.y] = y0 * cs.y + y1 * cs.x;
    }
}
