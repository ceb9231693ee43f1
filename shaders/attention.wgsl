// Causal grouped-query attention over the device-resident KV cache.
// `store` writes the new keys and values at their positions; `main` then runs one workgroup per
// (token, head), streaming the cache in chunks of 64 positions with an online softmax, so any
// context length fits in fixed shared memory.

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    pos: u32,
    n: u32,
    scale: f32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_new: array<f32>;
@group(0) @binding(3) var<storage, read> v_new: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn store(@builtin(global_invocation_id) gid: vec3<u32>) {
    let kvd = p.kv_heads * p.head_dim;
    if gid.x < p.n * kvd {
        let at = p.pos * kvd + gid.x;
        k_cache[at] = k_new[gid.x];
        v_cache[at] = v_new[gid.x];
    }
}

var<workgroup> qs: array<f32, 256>;
var<workgroup> probs: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

fn reduce_max(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if li < s {
            red[li] = max(red[li], red[li + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if li < s {
            red[li] += red[li + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let qd = p.heads * hd;
    let kvd = p.kv_heads * hd;
    let ko = (h / (p.heads / p.kv_heads)) * hd;
    for (var d = li; d < hd; d += WG) {
        qs[d] = q[t * qd + h * hd + d] * p.scale;
    }
    workgroupBarrier();
    let len = p.pos + t + 1u;
    var m = -3.0e38;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < len; c0 += WG) {
        let j = c0 + li;
        var s = -3.0e38;
        if j < len {
            s = 0.0;
            let kr = j * kvd + ko;
            for (var d = 0u; d < hd; d++) {
                s += qs[d] * k_cache[kr + d];
            }
        }
        let m_new = max(m, reduce_max(li, s));
        let corr = exp(m - m_new);
        var e = 0.0;
        if j < len {
            e = exp(s - m_new);
        }
        probs[li] = e;
        l = l * corr + reduce_sum(li, e);
        let count = min(WG, len - c0);
        for (var part = 0u; part < 4u; part++) {
            let d = li + part * WG;
            if d < hd {
                var a = acc[part] * corr;
                for (var jj = 0u; jj < count; jj++) {
                    a += probs[jj] * v_cache[(c0 + jj) * kvd + ko + d];
                }
                acc[part] = a;
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    for (var part = 0u; part < 4u; part++) {
        let d = li + part * WG;
        if d < hd {
            out[t * qd + h * hd + d] = acc[part] / l;
        }
    }
}
