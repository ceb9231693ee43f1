// out[t][row0 + r] (+)= dot(w[r], x[t]): one workgroup per weight row and tile of TILE tokens.
// Threads walk the row a word at a time (coalesced), dequantise it, and reduce in shared memory.

struct Params {
    rows: u32,       // rows in this part of the weight
    cols: u32,
    n: u32,          // tokens
    accumulate: u32,
    row0: u32,       // first output column of this part
    out_cols: u32,
    nx: u32,         // workgroups along x (rows = x + y * nx)
}

override TILE: u32 = 1u;
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 512>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = wid.x + wid.y * p.nx;
    let t0 = wid.z * TILE;
    if r >= p.rows {
        return;
    }
    let tn = min(TILE, p.n - t0);
    var acc: array<f32, 8>;
    let words = row_words(p.cols);
    let wrow = r * words;
    for (var i = li; i < words; i += WG) {
        let word = wq[wrow + i];
        if BITS == 32u {
            let w = bitcast<f32>(word);
            for (var t = 0u; t < TILE; t++) {
                if t < tn {
                    acc[t] += w * x[(t0 + t) * p.cols + i];
                }
            }
            continue;
        }
        let b = i / BITS;
        let j = i % BITS;
        let sm = ws[r * (p.cols / 32u) + b];
        let c = b * 32u + 4u * j;
        if BITS == 4u {
            let lo = vec4<f32>(f32(word & 0xFu), f32((word >> 8u) & 0xFu), f32((word >> 16u) & 0xFu), f32((word >> 24u) & 0xFu)) * sm.x + sm.y;
            let hi = vec4<f32>(f32((word >> 4u) & 0xFu), f32((word >> 12u) & 0xFu), f32((word >> 20u) & 0xFu), f32(word >> 28u)) * sm.x + sm.y;
            for (var t = 0u; t < TILE; t++) {
                if t < tn {
                    let xo = (t0 + t) * p.cols + c;
                    let xl = vec4<f32>(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u]);
                    let xh = vec4<f32>(x[xo + 16u], x[xo + 17u], x[xo + 18u], x[xo + 19u]);
                    acc[t] += dot(lo, xl) + dot(hi, xh);
                }
            }
        } else {
            let w = vec4<f32>(sbyte(word, 0u), sbyte(word, 1u), sbyte(word, 2u), sbyte(word, 3u)) * sm.x;
            for (var t = 0u; t < TILE; t++) {
                if t < tn {
                    let xo = (t0 + t) * p.cols + c;
                    acc[t] += dot(w, vec4<f32>(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u]));
                }
            }
        }
    }
    for (var t = 0u; t < TILE; t++) {
        partial[t * WG + li] = acc[t];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if li < s {
            for (var t = 0u; t < TILE; t++) {
                partial[t * WG + li] += partial[t * WG + li + s];
            }
        }
        workgroupBarrier();
    }
    if li < tn {
        let o = (t0 + li) * p.out_cols + p.row0 + r;
        let v = partial[li * WG];
        if p.accumulate != 0u {
            out[o] += v;
        } else {
            out[o] = v;
        }
    }
}
