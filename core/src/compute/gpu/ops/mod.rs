//! The ops the GPU backend records, a file each. Every file owns its shader, its parameters (a
//! struct laid out as the shader's `struct Params`, field for field), what it binds and how it
//! dispatches; [`super::fusion`] decides which of them merge into one mat-mul dispatch.

/// Declares an op's parameters: a `#[repr(C)]` plain struct named `Params`, as the WGSL
/// `struct Params` of `$shader` declares it. A test checks the two field for field.
macro_rules! uniform {
    ($(#[$doc:meta])* in $shader:expr => { $($(#[$fdoc:meta])* $field:ident: $ty:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Params {
            $($(#[$fdoc])* pub $field: $ty),+
        }

        impl $crate::compute::gpu::ops::Uniform for Params {
            const SHADER: &'static str = $shader;
            const FIELDS: &'static [(&'static str, &'static str)] = &[$((stringify!($field), stringify!($ty))),+];
        }
    };
}

pub mod attention;
pub mod bias;
pub mod copy_row;
pub mod embed;
pub mod glu;
pub mod matmul;
pub mod norm;
pub mod rope;
pub mod sampling;

/// An op's parameters: a plain struct laid out as its shader's `struct Params`, written to the
/// op's slot of the parameter buffer as it is.
pub trait Uniform: bytemuck::Pod {
    /// The WGSL source that declares the struct.
    const SHADER: &'static str;
    /// Its fields, name and WGSL type, in order.
    const FIELDS: &'static [(&'static str, &'static str)];
}

/// Workgroups per grid dimension that every device allows.
const MAX_GROUPS: u32 = 65_535;

/// `groups` workgroups as an (x, y) grid; shaders rebuild the index as `x + y * nx`.
pub fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1) as u32;
    if groups <= MAX_GROUPS {
        (groups, 1)
    } else {
        (MAX_GROUPS, groups.div_ceil(MAX_GROUPS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::gpu::kernels::PARAMS_BYTES;

    /// The fields of the `struct Params` that `source` declares, name and type, comments dropped.
    fn wgsl_params(source: &str) -> Vec<(String, String)> {
        let body = source.split("struct Params {").nth(1).expect("the shader declares struct Params");
        let body = body.split('}').next().expect("the struct ends");
        body.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, ty) = l.split_once(':').expect("a field is `name: type`");
                (name.trim().to_string(), ty.trim().to_string())
            })
            .collect()
    }

    fn matches_its_shader<P: Uniform>(op: &str) {
        let rust: Vec<(String, String)> = P::FIELDS.iter().map(|&(n, t)| (n.to_string(), t.to_string())).collect();
        assert_eq!(rust, wgsl_params(P::SHADER), "{op}: the Rust parameters and the shader's struct differ");
        assert_eq!(std::mem::size_of::<P>(), 4 * rust.len(), "{op}: every field is one word");
        assert!(std::mem::size_of::<P>() as u64 <= PARAMS_BYTES, "{op}: the parameters outgrow their slot");
    }

    /// Every op's parameters are its shader's, in order and type: a field added, dropped or
    /// moved on one side only fails here instead of reading the wrong word on the device.
    #[test]
    fn every_ops_parameters_match_its_shader() {
        matches_its_shader::<attention::Params>("attention");
        matches_its_shader::<bias::Params>("add_bias");
        matches_its_shader::<copy_row::Params>("copy_row");
        matches_its_shader::<embed::Params>("embed");
        matches_its_shader::<glu::Params>("glu");
        matches_its_shader::<matmul::Params>("matmul");
        matches_its_shader::<norm::Params>("rms_norm");
        matches_its_shader::<rope::Params>("rope");
        matches_its_shader::<sampling::penalize::Params>("penalize");
        matches_its_shader::<sampling::mask::Params>("mask");
        matches_its_shader::<sampling::top_k::Params>("top_k");
    }
}
