// A grammar's token mask: every logit of the row whose bit is clear in the bitset (bit i % 32
// of word i / 32) becomes -infinity; tokens past the bitset's end are masked too.

struct Params {
    cols: u32,
    words: u32,
    words_at: u32,
    row_at: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> allowed: array<u32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= p.cols {
        return;
    }
    let word = i / 32u;
    var keep = false;
    if word < p.words {
        keep = ((allowed[p.words_at + word] >> (i % 32u)) & 1u) == 1u;
    }
    if !keep {
        logits[p.row_at + i] = bitcast<f32>(0xff800000u);
    }
}
