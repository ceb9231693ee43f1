// Weights as the GPU backend stores them (repacked once at load, see core/src/compute/gpu/weights.rs):
// BITS = 4 (Q4_0, Q4_1, Q4_K): `wq` holds each 32-element block's unsigned nibbles as 4 words
// (low nibbles are elements 0..16, high ones 16..32), `ws` one (scale, minimum) per block so
// that a value is q * scale + minimum. BITS = 8 (every other quantised type): `wq` holds each
// block's signed bytes as 8 words, `ws` one (scale, minimum) per 16 elements. BITS = 32: `wq`
// holds f32 bits, row-major.
// Prepended to the shaders that read weights.

override BITS: u32 = 4u;

@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> ws: array<vec2<f32>>;

// Words per row of `cols` elements.
fn row_words(cols: u32) -> u32 {
    if BITS == 32u {
        return cols;
    }
    return cols / 32u * BITS;
}

// Signed byte `k` of `word`.
fn sbyte(word: u32, k: u32) -> f32 {
    return f32(bitcast<i32>(word << (24u - 8u * k)) >> 24u);
}

// Element `c` of row `r`.
fn weight_at(r: u32, c: u32, cols: u32) -> f32 {
    if BITS == 32u {
        return bitcast<f32>(wq[r * cols + c]);
    }
    let b = c / 32u;
    let e = c % 32u;
    let base = r * row_words(cols) + b * BITS;
    if BITS == 4u {
        let sm = ws[r * (cols / 32u) + b];
        let word = wq[base + (e % 16u) / 4u];
        let q = (word >> (8u * (e % 4u) + 4u * (e / 16u))) & 0xFu;
        return f32(q) * sm.x + sm.y;
    }
    let sm = ws[r * (cols / 16u) + c / 16u];
    return sbyte(wq[base + e / 4u], e % 4u) * sm.x + sm.y;
}
