// The rotary embedding's (cos, sin) for pair `i` of a head `head_dim` wide at position `at`,
// its angle divided by `factor`. Prepended to the shaders that rotate.

const TAU: f32 = 6.283185307179586;

fn rotation(at: u32, i: u32, head_dim: u32, base: f32, factor: f32) -> vec2<f32> {
    let theta = f32(at) * pow(base, -2.0 * f32(i) / f32(head_dim)) / factor;
    // Reduce to [-pi, pi) first: GPU sin/cos are only accurate there. theta = a + pi + k tau.
    let a = (fract(theta / TAU) - 0.5) * TAU;
    return vec2<f32>(-cos(a), -sin(a));
}
