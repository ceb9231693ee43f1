// out[i] = table[ids[i]] * scale dequantised, for the tokens whose row lies in this part of the
// table.

struct Params {
    cols: u32,
    tokens: u32,
    ids_at: u32,     // first token in `ids`
    row0: u32,       // first table row of this part
    rows: u32,       // rows in this part
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let i = gid.y;
    if c >= p.cols || i >= p.tokens {
        return;
    }
    let token = ids[p.ids_at + i];
    if token < p.row0 || token >= p.row0 + p.rows {
        return;
    }
    out[i * p.cols + c] = weight_at(token - p.row0, c, p.cols) * p.scale;
}
