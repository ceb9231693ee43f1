// Causal grouped-query attention over the device-resident KV cache (or its last `window`
// positions), one workgroup per (head, token, span of `span` cache positions). Positions before `pos` come from the caches, the new
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
    window: u32,  // positions a query sees, its own among them; 0: all before it
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

// The head width, fixed per pipeline so that loops over a row unroll and their loads overlap.
override HEAD_DIM: u32 = 64u;
override HD4: u32 = HEAD_DIM / 4u;
// Vectors of four a lane takes in the weighted sum (16 lanes per row).
override PARTS: u32 = (HD4 + 15u) / 16u;

// Four elements (at `d4`, in fours) of key or value row j of the head at `ko`: cached before
// `pos`, new from it on. Both are read and one kept, so the loads of a loop can overlap.
fn key(j: u32, ko: u32, d4: u32) -> vec4<f32> {
    let kvd = p.kv_heads * HD4;
    let fresh = k_new[select(0u, j - p.pos, j >= p.pos) * kvd + ko + d4];
    return select(fresh, k_cache[j * kvd + ko + d4], j < p.pos);
}

fn value(j: u32, ko: u32, d4: u32) -> vec4<f32> {
    let kvd = p.kv_heads * HD4;
    let fresh = v_new[select(0u, j - p.pos, j >= p.pos) * kvd + ko + d4];
    return select(fresh, v_cache[j * kvd + ko + d4], j < p.pos);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let t = wid.y;
    let split = wid.z;
    let qd = p.heads * HEAD_DIM;
    let kvd = p.kv_heads * HD4;
    let group = p.heads / p.kv_heads;
    let ko = (h / group) * HD4;
    if split == 0u && h % group == 0u {
        let at = (p.pos + t) * kvd + ko;
        for (var d = li; d < HD4; d += WG) {
            k_cache[at + d] = k_new[t * kvd + ko + d];
            v_cache[at + d] = v_new[t * kvd + ko + d];
        }
    }
    for (var d = li; d < HD4; d += WG) {
        let at = t * qd + h * HEAD_DIM + 4u * d;
        qs[d] = vec4<f32>(q[at], q[at + 1u], q[at + 2u], q[at + 3u]) * p.scale;
    }
    workgroupBarrier();
    let end = min(split * p.span + p.span, p.pos + t + 1u);
    let seen = select(0u, p.pos + t + 1u - p.window, p.window != 0u && p.pos + t + 1u > p.window);
    let begin = max(split * p.span, seen);
    // For the weighted sum, 4 groups of 16 lanes: group g takes every 4th position, lane l
    // dimensions 4l..4l+3 (and +64, +128, +192).
    let g = li / 16u;
    let lane = li % 16u;
    var m = -3.0e38;
    var l = 0.0;
    var acc: array<vec4<f32>, 4>;
    for (var c0 = begin; c0 < end; c0 += WG) {
        // Rows past the end are read as the last one and weighted 0.
        let j = min(c0 + li, end - 1u);
        var s = 0.0;
        for (var d = 0u; d < HD4; d++) {
            s += dot(qs[d], key(j, ko, d));
        }
        let inside = c0 + li < end;
        s = select(-3.0e38, s, inside);
        let m_new = max(m, reduce_max(li, s));
        let corr = exp(m - m_new);
        let e = select(0.0, exp(s - m_new), inside);
        probs[li] = e;
        l = l * corr + reduce_sum(li, e);
        for (var part = 0u; part < PARTS; part++) {
            acc[part] *= corr;
        }
        for (var i = 0u; i < WG / 4u; i++) {
            let jj = g + 4u * i;
            let pr = probs[jj];
            let row = min(c0 + jj, end - 1u);
            for (var part = 0u; part < PARTS; part++) {
                let d4 = min(part * 16u + lane, HD4 - 1u);
                acc[part] += pr * value(row, ko, d4);
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    // Sum the four groups' partial vectors.
    for (var part = 0u; part < PARTS; part++) {
        let d4 = part * 16u + lane;
        if d4 < HD4 {
            for (var e = 0u; e < 4u; e++) {
                group_acc[g * 256u + 4u * d4 + e] = acc[part][e];
            }
        }
    }
    workgroupBarrier();
    for (var d = li; d < HEAD_DIM; d += WG) {
        let sum = group_acc[d] + group_acc[256u + d] + group_acc[512u + d] + group_acc[768u + d];
        if p.spans == 1u {
            out[t * qd + h * HEAD_DIM + d] = sum / l;
        } else {
            partial[((t * p.heads + h) * p.spans + split) * (HEAD_DIM + 2u) + d] = sum;
        }
    }
    if p.spans > 1u && li == 0u {
        // An empty span (past this token's position) leaves l = 0 and adds nothing.
        let at = ((t * p.heads + h) * p.spans + split) * (HEAD_DIM + 2u);
        partial[at + HEAD_DIM] = m;
        partial[at + HEAD_DIM + 1u] = l;
    }
}

// The weights of the spans, exp(max - overall max), of the first WG spans (the rest are made
// as they are read).
fn span_weight(base: u32, s: u32, m: f32) -> f32 {
    if s < WG {
        return probs[s];
    }
    return exp(partial[base + s * (p.head_dim + 2u) + p.head_dim] - m);
}

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let base = (t * p.heads + h) * p.spans * (hd + 2u);
    // Lane i merges the (max, total) of spans i, i + WG, ...; then the lanes merge theirs. Every
    // load of a loop is independent of the last, so the spans are read at once, not in turn.
    var m = -3.0e38;
    var l = 0.0;
    for (var s = li; s < p.spans; s += WG) {
        let at = base + s * (hd + 2u);
        let ms = partial[at + hd];
        let mn = max(m, ms);
        l = l * exp(m - mn) + partial[at + hd + 1u] * exp(ms - mn);
        m = mn;
    }
    let overall = reduce_max(li, m);
    let total = reduce_sum(li, l * exp(m - overall));
    if li < p.spans {
        probs[li] = exp(partial[base + li * (hd + 2u) + hd] - overall);
    }
    workgroupBarrier();
    for (var d = li; d < hd; d += WG) {
        var o = 0.0;
        var s = 0u;
        for (; s + 4u <= p.spans; s += 4u) {
            let at = base + s * (hd + 2u) + d;
            let v = vec4<f32>(partial[at], partial[at + hd + 2u], partial[at + 2u * (hd + 2u)], partial[at + 3u * (hd + 2u)]);
            let w = vec4<f32>(span_weight(base, s, overall), span_weight(base, s + 1u, overall),
                span_weight(base, s + 2u, overall), span_weight(base, s + 3u, overall));
            o += dot(v, w);
        }
        for (; s < p.spans; s++) {
            o += partial[base + s * (hd + 2u) + d] * span_weight(base, s, overall);
        }
        out[t * (p.heads * hd) + h * hd + d] = o / total;
    }
}
