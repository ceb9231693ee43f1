// Repetition penalty: each listed (distinct) token's logit is divided by the penalty when
// positive, multiplied when negative.

struct Params {
    count: u32,
    ids_at: u32,
    row_at: u32,
    penalty: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x >= p.count {
        return;
    }
    let i = p.row_at + ids[p.ids_at + gid.x];
    let l = logits[i];
    logits[i] = select(l * p.penalty, l / p.penalty, l > 0.0);
}
