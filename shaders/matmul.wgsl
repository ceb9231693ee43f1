// out_k[t][row0 + r] (+)= dot(w_k[r], in[t]) for up to three weights w_0..w_2 that share one
// input (COUNT), with the input made on the fly (INPUT): 0 the activation `x` as is; 1 RMSNorm
// of `x` times the norm weight `aux`; 2 silu(`x`) * `aux`. Fusing the norm (or SiLU·mul) and
// the matrices that read it saves dispatches: in the llama block, norm + q/k/v is one dispatch,
// and so are norm + gate/up and SiLU·mul + down. The first workgroup also writes the made input
// to `side`, so the tensor the guest named holds what it expects. Outputs whose bit is set in
// `rope` are also rotated (adjacent pairs of rows, which share a workgroup when LANES <= 32):
// norm + q/k/v + both rotations is one dispatch.
//
// One workgroup per 64 / LANES weight rows and tile of TILE tokens: LANES threads per row walk it
// a word at a time (coalesced), dequantise it, and reduce in shared memory; the input transform
// (the norm's scale) is made once for the workgroup's rows. Many short rows run best four to a
// workgroup (LANES = 16), few or long ones one to a workgroup (LANES = 64).

struct Params {
    rows0: u32,
    rows1: u32,
    rows2: u32,
    n: u32,          // tokens
    accumulate: u32,
    row0: u32,       // first output column (a part of a split weight; COUNT = 1)
    out_cols: u32,   // output row width (COUNT = 1; fused outputs are their weight's height)
    nx: u32,         // workgroups along x (rows = (x + y * nx) * 64 / LANES + lane group)
    eps: f32,
    rope: u32,       // bit k: rotate output k
    rope_head_dim: u32,
    rope_pos: u32,
    rope_base: f32,
}

override TILE: u32 = 1u;
// The row width, fixed per pipeline so that loops over a row unroll and their loads overlap.
override COLS: u32 = 32u;
override INPUT: u32 = 0u;
override COUNT: u32 = 1u;
const WG: u32 = 64u;
override LANES: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> wq1: array<u32>;
@group(0) @binding(4) var<storage, read> ws1: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> wq2: array<u32>;
@group(0) @binding(6) var<storage, read> ws2: array<vec2<f32>>;
// Read four at a time: rows of a quantised weight's input are whole blocks of 32.
@group(0) @binding(7) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> aux: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> out0: array<f32>;
@group(0) @binding(10) var<storage, read_write> out1: array<f32>;
@group(0) @binding(11) var<storage, read_write> out2: array<f32>;
@group(0) @binding(12) var<storage, read_write> side: array<vec4<f32>>;

var<workgroup> partial: array<f32, 512>;
var<workgroup> scales: array<f32, 32>;

fn word(k: u32, i: u32) -> u32 {
    switch k {
        case 0u: { return wq[i]; }
        case 1u: { return wq1[i]; }
        default: { return wq2[i]; }
    }
}

fn scale_min(k: u32, i: u32) -> vec2<f32> {
    switch k {
        case 0u: { return ws[i]; }
        case 1u: { return ws1[i]; }
        default: { return ws2[i]; }
    }
}

fn x_at(i: u32) -> f32 {
    return x[i / 4u][i % 4u];
}

fn aux_at(i: u32) -> f32 {
    return aux[i / 4u][i % 4u];
}

// Element c of token t's input (tl: t's place in the tile).
fn input(t: u32, tl: u32, c: u32) -> f32 {
    let v = x_at(t * COLS + c);
    if INPUT == 1u {
        return v * scales[tl] * aux_at(c);
    }
    if INPUT == 2u {
        return v / (1.0 + exp(-v)) * aux_at(t * COLS + c);
    }
    return v;
}

// Elements c..c+3 of token t's input, c a multiple of 4 (quantised weights only).
fn input4(t: u32, tl: u32, c: u32) -> vec4<f32> {
    let i = (t * COLS + c) / 4u;
    let v = x[i];
    if INPUT == 1u {
        return v * scales[tl] * aux[c / 4u];
    }
    if INPUT == 2u {
        return v / (1.0 + exp(-v)) * aux[i];
    }
    return v;
}

// Weight `k` and its row for row `g` of the fused output (rows0 + rows1 + rows2 of them).
fn locate(g: u32) -> vec2<u32> {
    var r = g;
    var k = 0u;
    if COUNT > 1u && r >= p.rows0 {
        r -= p.rows0;
        k = 1u;
        if COUNT > 2u && r >= p.rows1 {
            r -= p.rows1;
            k = 2u;
        }
    }
    return vec2<u32>(k, r);
}

// Output rows of weight `k`.
fn height(k: u32) -> u32 {
    return select(select(p.rows2, p.rows1, k == 1u), p.rows0, k == 0u);
}

// Writes (or adds, where asked) `v` as row `r` of weight `k`'s output for token `t`.
fn store(k: u32, r: u32, t: u32, v: f32) {
    switch k {
        case 0u: {
            let o = t * select(p.out_cols, p.rows0, COUNT > 1u) + p.row0 + r;
            out0[o] = select(v, out0[o] + v, p.accumulate != 0u);
        }
        case 1u: {
            out1[t * p.rows1 + r] = v;
        }
        default: {
            out2[t * p.rows2 + r] = v;
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let lane = li % LANES;
    let at = locate((wid.x + wid.y * p.nx) * (WG / LANES) + li / LANES);
    let k = at.x;
    let r = at.y;
    let t0 = wid.z * TILE;
    let tn = min(TILE, p.n - t0);
    let rows = height(k);
    // Rows past the end still take part in the workgroup's barriers.
    let valid = r < rows;
    if INPUT == 1u {
        for (var t = 0u; t < TILE; t++) {
            var s = 0.0;
            if t < tn {
                if COLS % 4u == 0u {
                    for (var c = li; c < COLS / 4u; c += WG) {
                        let v = x[(t0 + t) * (COLS / 4u) + c];
                        s += dot(v, v);
                    }
                } else {
                    for (var c = li; c < COLS; c += WG) {
                        let v = x_at((t0 + t) * COLS + c);
                        s += v * v;
                    }
                }
            }
            partial[t * WG + li] = s;
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
        if li < TILE {
            scales[li] = inverseSqrt(partial[li * WG] / f32(COLS) + p.eps);
        }
        workgroupBarrier();
    }
    // The first workgroup of each tile writes the made input, all its threads four at a time
    // (this is on the dispatch's critical path).
    if INPUT != 0u && wid.x == 0u && wid.y == 0u {
        for (var t = 0u; t < tn; t++) {
            if COLS % 4u == 0u {
                for (var c = li; c < COLS / 4u; c += WG) {
                    side[(t0 + t) * (COLS / 4u) + c] = input4(t0 + t, t, 4u * c);
                }
            } else {
                for (var c = li; c < COLS; c += WG) {
                    let i = (t0 + t) * COLS + c;
                    side[i / 4u][i % 4u] = input(t0 + t, t, c);
                }
            }
        }
    }
    var acc: array<f32, 8>;
    let words = select(0u, row_words(COLS), valid);
    let wrow = r * words;
    for (var i = lane; i < words; i += LANES) {
        let w = word(k, wrow + i);
        if BITS == 32u {
            let wf = bitcast<f32>(w);
            for (var t = 0u; t < TILE; t++) {
                if t < tn {
                    acc[t] += wf * input(t0 + t, t, i);
                }
            }
            continue;
        }
        let b = i / BITS;
        let j = i % BITS;
        let c = b * 32u + 4u * j;
        if BITS == 4u {
            let sm = scale_min(k, r * (COLS / 32u) + b);
            let lo = vec4<f32>(f32(w & 0xFu), f32((w >> 8u) & 0xFu), f32((w >> 16u) & 0xFu), f32((w >> 24u) & 0xFu)) * sm.x + sm.y;
            let hi = vec4<f32>(f32((w >> 4u) & 0xFu), f32((w >> 12u) & 0xFu), f32((w >> 20u) & 0xFu), f32(w >> 28u)) * sm.x + sm.y;
            for (var t = 0u; t < TILE; t++) {
                if t < tn {
                    acc[t] += dot(lo, input4(t0 + t, t, c)) + dot(hi, input4(t0 + t, t, c + 16u));
                }
            }
        } else {
            let sm = scale_min(k, r * (COLS / 16u) + c / 16u);
            let wv = vec4<f32>(sbyte(w, 0u), sbyte(w, 1u), sbyte(w, 2u), sbyte(w, 3u)) * sm.x + sm.y;
            for (var t = 0u; t < TILE; t++) {
                if t < tn {
                    acc[t] += dot(wv, input4(t0 + t, t, c));
                }
            }
        }
    }
    workgroupBarrier();
    for (var t = 0u; t < TILE; t++) {
        partial[t * WG + li] = acc[t];
    }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if lane < s {
            for (var t = 0u; t < TILE; t++) {
                partial[t * WG + li] += partial[t * WG + li + s];
            }
        }
        workgroupBarrier();
    }
    if valid && lane < tn {
        var v = partial[lane * WG + li - lane];
        let t = t0 + lane;
        if ((p.rope >> k) & 1u) != 0u {
            // The pair's other row is the same lane of the neighbouring row group.
            let mate = partial[lane * WG + (li ^ LANES) - lane];
            let cs = rotation(p.rope_pos + t, (r % p.rope_head_dim) / 2u, p.rope_head_dim, p.rope_base, 1.0);
            v = select(mate * cs.y + v * cs.x, v * cs.x - mate * cs.y, r % 2u == 0u);
        }
        store(k, r, t, v);
    }
}

// Prefill: `tiles` computes a tile of TR weight rows × TT tokens per workgroup, each thread
// 4 rows × 4 tokens. A step stages one quant block's TK columns of the tile's weights
// (dequantised) and inputs (made) in shared memory, so a weight is read once per TT tokens and
// each staged value feeds 4 multiply-adds from a register. Quantised weights only (rows are
// whole blocks).
const TR: u32 = 32u;
const TT: u32 = 32u;
const TK: u32 = 32u;

// [column][row / 4] and [column][token / 4].
var<workgroup> wt: array<vec4<f32>, 256>;
var<workgroup> xt: array<vec4<f32>, 256>;

// Stages block `b` of tile row `lr` (weight `k`, row `r`): this thread's 16 of its 32 values.
fn stage_weights(k: u32, r: u32, b: u32, lr: u32, half: u32) {
    let base = r * row_words(COLS) + b * BITS;
    if BITS == 4u {
        let sm = scale_min(k, r * (COLS / 32u) + b);
        for (var h = 0u; h < 2u; h++) {
            let j = half * 2u + h;
            let w = word(k, base + j);
            for (var e = 0u; e < 4u; e++) {
                wt[(4u * j + e) * 8u + lr / 4u][lr % 4u] = f32((w >> (8u * e)) & 0xFu) * sm.x + sm.y;
                wt[(16u + 4u * j + e) * 8u + lr / 4u][lr % 4u] = f32((w >> (8u * e + 4u)) & 0xFu) * sm.x + sm.y;
            }
        }
    } else {
        let sm = scale_min(k, r * (COLS / 16u) + b * 2u + half);
        for (var h = 0u; h < 4u; h++) {
            let j = half * 4u + h;
            let w = word(k, base + j);
            for (var e = 0u; e < 4u; e++) {
                wt[(4u * j + e) * 8u + lr / 4u][lr % 4u] = sbyte(w, e) * sm.x + sm.y;
            }
        }
    }
}

@compute @workgroup_size(64)
fn tiles(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row_base = (wid.x + wid.y * p.nx) * TR;
    let t0 = wid.z * TT;
    let tn = min(TT, p.n - t0);
    let half = li % 2u;
    let lr = li / 2u;
    if INPUT == 1u {
        var s = 0.0;
        if lr < tn {
            for (var c = half; c < COLS / 4u; c += 2u) {
                let v = x[(t0 + lr) * (COLS / 4u) + c];
                s += dot(v, v);
            }
        }
        partial[li] = s;
        workgroupBarrier();
        if half == 0u {
            scales[lr] = inverseSqrt((partial[li] + partial[li + 1u]) / f32(COLS) + p.eps);
        }
        workgroupBarrier();
    }
    if INPUT != 0u && row_base == 0u {
        for (var t = 0u; t < tn; t++) {
            for (var c = li; c < COLS / 4u; c += WG) {
                side[(t0 + t) * (COLS / 4u) + c] = input4(t0 + t, t, 4u * c);
            }
        }
    }
    // What this thread stages: tile row `lr`'s weights and token `lr`'s inputs, half a block each.
    let at = locate(row_base + lr);
    let staged_row = at.y < height(at.x);
    let staged_token = lr < tn;
    // What it computes: rows ty*4.., tokens tx*4...
    let ty = li / 8u;
    let tx = li % 8u;
    // Four accumulators of four tokens, one per row: named, so that they stay in registers.
    var a0 = vec4<f32>();
    var a1 = vec4<f32>();
    var a2 = vec4<f32>();
    var a3 = vec4<f32>();
    for (var b = 0u; b < COLS / TK; b++) {
        if staged_row {
            stage_weights(at.x, at.y, b, lr, half);
        }
        if staged_token {
            for (var h = 0u; h < 4u; h++) {
                let c = half * 16u + 4u * h;
                let v = input4(t0 + lr, lr, b * TK + c);
                xt[(c + 0u) * 8u + lr / 4u][lr % 4u] = v.x;
                xt[(c + 1u) * 8u + lr / 4u][lr % 4u] = v.y;
                xt[(c + 2u) * 8u + lr / 4u][lr % 4u] = v.z;
                xt[(c + 3u) * 8u + lr / 4u][lr % 4u] = v.w;
            }
        }
        workgroupBarrier();
        for (var c = 0u; c < TK; c++) {
            let w = wt[c * 8u + ty];
            let v = xt[c * 8u + tx];
            a0 += w.x * v;
            a1 += w.y * v;
            a2 += w.z * v;
            a3 += w.w * v;
        }
        workgroupBarrier();
    }
    // Rotated pairs are rows (0, 1) and (2, 3) of the four.
    store_tile(row_base + ty * 4u, t0 + tx * 4u, tn - min(tn, tx * 4u), a0, a1);
    store_tile(row_base + ty * 4u + 2u, t0 + tx * 4u, tn - min(tn, tx * 4u), a2, a3);
}

// Writes rows g and g + 1 for tokens t..t+3, the first `tokens` of them. A rotated output
// has even heights, so its pairs are such rows of one weight.
fn store_tile(g: u32, t: u32, tokens: u32, even: vec4<f32>, odd: vec4<f32>) {
    let a = locate(g);
    let b = locate(g + 1u);
    let rotate = ((p.rope >> a.x) & 1u) != 0u;
    for (var j = 0u; j < min(tokens, 4u); j++) {
        var v0 = even[j];
        var v1 = odd[j];
        if rotate {
            let cs = rotation(p.rope_pos + t + j, (a.y % p.rope_head_dim) / 2u, p.rope_head_dim, p.rope_base, 1.0);
            let e = v0;
            v0 = e * cs.x - v1 * cs.y;
            v1 = v1 * cs.x + e * cs.y;
        }
        if a.y < height(a.x) {
            store(a.x, a.y, t + j, v0);
        }
        if b.y < height(b.x) {
            store(b.x, b.y, t + j, v1);
        }
    }
}
