// The k best (value, id) pairs of each segment of SEG entries, best first, ties to the lower id.
// Run on a logits row (stride 1: the id is the index) and then, until one segment is left, on
// the previous round's candidates (stride 2: value bits, id). Sampling reads back k pairs.

struct Params {
    count: u32,   // entries in the input
    at: u32,      // first input word
    stride: u32,  // 1: plain f32 values; 2: (value bits, id) pairs
    k: u32,
}

const WG: u32 = 256u;
const SEG: u32 = 1024u;
const NONE: u32 = 0xFFFFFFFFu;

// Empty slots and NaN rank last: -infinity with no id, so a logit a grammar masked to -infinity
// (which has an id) still ranks before them, as on the CPU.
fn lowest() -> f32 {
    return bitcast<f32>(0xff800000u);
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;

var<workgroup> vals: array<f32, 1024>;
var<workgroup> ids: array<u32, 1024>;
var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;
var<workgroup> best_s: array<u32, 256>;

// Whether (va, ia) ranks before (vb, ib).
fn before(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
    return va > vb || (va == vb && ia < ib);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let seg = wid.x;
    for (var e = li; e < SEG; e += WG) {
        let i = seg * SEG + e;
        vals[e] = lowest();
        ids[e] = NONE;
        if i < p.count {
            if p.stride == 1u {
                let v = bitcast<f32>(input[p.at + i]);
                // NaN ranks last.
                vals[e] = select(lowest(), v, v == v);
                ids[e] = i;
            } else {
                vals[e] = bitcast<f32>(input[p.at + 2u * i]);
                ids[e] = input[p.at + 2u * i + 1u];
            }
        }
    }
    workgroupBarrier();
    for (var round = 0u; round < p.k; round++) {
        var bv = lowest();
        var bi = NONE;
        var bs = 0u;
        for (var e = li; e < SEG; e += WG) {
            if before(vals[e], ids[e], bv, bi) {
                bv = vals[e];
                bi = ids[e];
                bs = e;
            }
        }
        best_v[li] = bv;
        best_i[li] = bi;
        best_s[li] = bs;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if li < s && before(best_v[li + s], best_i[li + s], best_v[li], best_i[li]) {
                best_v[li] = best_v[li + s];
                best_i[li] = best_i[li + s];
                best_s[li] = best_s[li + s];
            }
            workgroupBarrier();
        }
        if li == 0u {
            let o = 2u * (seg * p.k + round);
            output[o] = bitcast<u32>(best_v[0]);
            output[o + 1u] = best_i[0];
            vals[best_s[0]] = lowest();
            ids[best_s[0]] = NONE;
        }
        workgroupBarrier();
    }
}
