// Causal grouped-query attention over the device-resident KV cache.
// `store` writes the new keys and values at their positions. `main` runs one workgroup per
// (head, token, span of `span` cache positions), streaming its span in chunks of 64 with an
// online softmax, so any context fits fixed shared memory and a single decoded token still
// spreads over many workgroups. With one span it writes the output; otherwise each span leaves
// (unnormalised sum, max, total) in `partial` and `combine` merges the spans per head.

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    pos: u32,
    n: u32,
    scale: f32,
    nx: u32,      // workgroups along x for `store`
    span: u32,    // cache positions per workgroup of `main` (a multiple of 64)
    spans: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_new: array<f32>;
@group(0) @binding(3) var<storage, read> v_new: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(64)
fn store(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let kvd = p.kv_heads * p.head_dim;
    let i = (wid.x + wid.y * p.nx) * 64u + li;
    if i < p.n * kvd {
        let at = p.pos * kvd + i;
        k_cache[at] = k_new[i];
        v_cache[at] = v_new[i];
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
    let split = wid.z;
    let hd = p.head_dim;
    let qd = p.heads * hd;
    let kvd = p.kv_heads * hd;
    let ko = (h / (p.heads / p.kv_heads)) * hd;
    for (var d = li; d < hd; d += WG) {
        qs[d] = q[t * qd + h * hd + d] * p.scale;
    }
    workgroupBarrier();
    let begin = split * p.span;
    let end = min(begin + p.span, p.pos + t + 1u);
    var m = -3.0e38;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var c0 = begin; c0 < end; c0 += WG) {
        let j = c0 + li;
        var s = -3.0e38;
        if j < end {
            s = 0.0;
            let kr = j * kvd + ko;
            let whole = hd & ~3u;
            for (var d = 0u; d < whole; d += 4u) {
                s += dot(vec4<f32>(qs[d], qs[d + 1u], qs[d + 2u], qs[d + 3u]),
                         vec4<f32>(k_cache[kr + d], k_cache[kr + d + 1u], k_cache[kr + d + 2u], k_cache[kr + d + 3u]));
            }
            for (var d = whole; d < hd; d++) {
                s += qs[d] * k_cache[kr + d];
            }
        }
        let m_new = max(m, reduce_max(li, s));
        let corr = exp(m - m_new);
        var e = 0.0;
        if j < end {
            e = exp(s - m_new);
        }
        probs[li] = e;
        l = l * corr + reduce_sum(li, e);
        let count = min(WG, end - c0);
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
    if p.spans == 1u {
        for (var part = 0u; part < 4u; part++) {
            let d = li + part * WG;
            if d < hd {
                out[t * qd + h * hd + d] = acc[part] / l;
            }
        }
        return;
    }
    // An empty span (past this token's position) leaves l = 0 and adds nothing.
    let at = ((t * p.heads + h) * p.spans + split) * (hd + 2u);
    for (var part = 0u; part < 4u; part++) {
        let d = li + part * WG;
        if d < hd {
            partial[at + d] = acc[part];
        }
    }
    if li == 0u {
        partial[at + hd] = m;
        partial[at + hd + 1u] = l;
    }
}

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let base = (t * p.heads + h) * p.spans * (hd + 2u);
    var m = -3.0e38;
    for (var s = 0u; s < p.spans; s++) {
        m = max(m, partial[base + s * (hd + 2u) + hd]);
    }
    var l = 0.0;
    for (var s = 0u; s < p.spans; s++) {
        let at = base + s * (hd + 2u);
        l += partial[at + hd + 1u] * exp(partial[at + hd] - m);
    }
    for (var d = li; d < hd; d += WG) {
        var o = 0.0;
        for (var s = 0u; s < p.spans; s++) {
            let at = base + s * (hd + 2u);
            o += partial[at + d] * exp(partial[at + hd] - m);
        }
        out[t * (p.heads * hd) + h * hd + d] = o / l;
    }
}
