// Causal grouped-query attention over the device-resident KV cache, one workgroup per (head,
// token, span of `span` cache positions). Positions before `pos` come from the caches, the new
// ones straight from this batch's keys and values — which the first span's workgroups of each
// key/value head also store into the caches, so no separate store pass is needed. A span is
// streamed in chunks of 64 positions with an online softmax, so any context fits fixed shared
// memory and one decoded token still spreads over many workgroups. With one span the workgroup
// writes the output; otherwise each span leaves (unnormalised sum, max, total) in `partial` and
// `combine` merges the spans per head.

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    pos: u32,
    n: u32,
    scale: f32,
    span: u32,    // cache positions per workgroup of `main` (a multiple of 64)
    spans: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
// Keys and values four at a time (head widths are multiples of 4).
@group(0) @binding(2) var<storage, read> k_new: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v_new: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;

var<workgroup> qs: array<vec4<f32>, 64>;
var<workgroup> probs: array<f32, 64>;
var<workgroup> red: array<f32, 64>;
var<workgroup> group_acc: array<f32, 1024>;

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

// Elements 4 d4 .. 4 d4 + 3 of value row j (head at `ko`, in fours): cached before `pos`, new
// from it on.
fn value(j: u32, ko: u32, d4: u32) -> vec4<f32> {
    let kvd = p.kv_heads * p.head_dim / 4u;
    if j < p.pos {
        return v_cache[j * kvd + ko + d4];
    }
    return v_new[(j - p.pos) * kvd + ko + d4];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let t = wid.y;
    let split = wid.z;
    let hd = p.head_dim;
    let hd4 = hd / 4u;
    let qd = p.heads * hd;
    let kvd = p.kv_heads * hd4;
    let group = p.heads / p.kv_heads;
    let ko = (h / group) * hd4;
    if split == 0u && h % group == 0u {
        let at = (p.pos + t) * kvd + ko;
        for (var d = li; d < hd4; d += WG) {
            k_cache[at + d] = k_new[t * kvd + ko + d];
            v_cache[at + d] = v_new[t * kvd + ko + d];
        }
    }
    for (var d = li; d < hd4; d += WG) {
        let at = t * qd + h * hd + 4u * d;
        qs[d] = vec4<f32>(q[at], q[at + 1u], q[at + 2u], q[at + 3u]) * p.scale;
    }
    workgroupBarrier();
    let begin = split * p.span;
    let end = min(begin + p.span, p.pos + t + 1u);
    // For the weighted sum, 4 groups of 16 lanes: group g takes every 4th position, lane l
    // dimensions 4l..4l+3 (and +64, +128, +192).
    let g = li / 16u;
    let lane = li % 16u;
    var m = -3.0e38;
    var l = 0.0;
    var acc: array<vec4<f32>, 4>;
    for (var c0 = begin; c0 < end; c0 += WG) {
        let j = c0 + li;
        var s = -3.0e38;
        if j < end {
            s = 0.0;
            if j < p.pos {
                let row = j * kvd + ko;
                for (var d = 0u; d < hd4; d++) {
                    s += dot(qs[d], k_cache[row + d]);
                }
            } else {
                let row = (j - p.pos) * kvd + ko;
                for (var d = 0u; d < hd4; d++) {
                    s += dot(qs[d], k_new[row + d]);
                }
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
            acc[part] *= corr;
        }
        for (var jj = g; jj < count; jj += 4u) {
            let pr = probs[jj];
            for (var part = 0u; part < 4u; part++) {
                let d4 = part * 16u + lane;
                if d4 < hd4 {
                    acc[part] += pr * value(c0 + jj, ko, d4);
                }
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    // Sum the four groups' partial vectors.
    for (var part = 0u; part < 4u; part++) {
        let d = part * 64u + lane * 4u;
        if d < hd {
            for (var e = 0u; e < 4u; e++) {
                group_acc[g * 256u + d + e] = acc[part][e];
            }
        }
    }
    workgroupBarrier();
    for (var d = li; d < hd; d += WG) {
        let sum = group_acc[d] + group_acc[256u + d] + group_acc[512u + d] + group_acc[768u + d];
        if p.spans == 1u {
            out[t * qd + h * hd + d] = sum / l;
        } else {
            partial[((t * p.heads + h) * p.spans + split) * (hd + 2u) + d] = sum;
        }
    }
    if p.spans > 1u && li == 0u {
        // An empty span (past this token's position) leaves l = 0 and adds nothing.
        let at = ((t * p.heads + h) * p.spans + split) * (hd + 2u);
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
