// out = act(gate) * up, element-wise: SiLU, or GELU's tanh approximation.

struct Params {
    count: u32,
    nx: u32,
    gelu: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.x + wid.y * p.nx) * 256u + li;
    if i < p.count {
        let g = gate[i];
        var a: f32;
        if p.gelu != 0u {
            // tanh(y) as 1 - 2 / (exp(2y) + 1), which stays finite for any y.
            let y = SQRT_2_OVER_PI * g * (1.0 + 0.044715 * g * g);
            a = 0.5 * g * (2.0 - 2.0 / (exp(2.0 * y) + 1.0));
        } else {
            a = g / (1.0 + exp(-g));
        }
        out[i] = a * up[i];
    }
}
