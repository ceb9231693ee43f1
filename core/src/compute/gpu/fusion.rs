//! Which recorded ops merge into one dispatch. The backend holds the last op back; when the
//! next one reads what it wrote in a way one kernel can do, they become one mat-mul:
//! RMSNorm over whole rows + the mat-muls that read the normed rows (up to three, sharing the
//! input), and SiLU·mul + the mat-mul that reads the product; the rotary embedding of a mat-mul's output
//! (or else of two tensors at once). With attention storing its own keys and values, a llama
//! block takes 5 dispatches instead of 14: norm+q/k/v+rope, attention, o, norm+gate/up,
//! silu+down (and a merge of attention's spans past 64 positions).

use super::ops::matmul::MatmulInput;
use crate::compute::{ActId, Activation, NormSpec, RopeSpec, WeightId};

/// An op held back in case the next one fuses with it.
#[derive(Debug, Clone)]
pub enum Pending {
    /// RMSNorm of `x` by `weight` into `out`, over whole rows or groups of the weight's width.
    Norm { x: ActId, weight: WeightId, spec: NormSpec, whole_rows: bool, out: ActId },
    /// `out = act(gate) * up`.
    Glu { gate: ActId, up: ActId, act: Activation, rows: usize, out: ActId },
    /// One dispatch of mat-muls.
    Matmul(FusedMatmul),
    /// Rotary embedding of one tensor or two (same positions and heads).
    Rope { x: ActId, y: Option<ActId>, spec: RopeSpec },
}

/// Up to three mat-muls over one input, made from an activation on the fly.
#[derive(Debug, Clone)]
pub struct FusedMatmul {
    /// How the input is made.
    pub input: MatmulInput,
    /// The activation read (the norm's or SiLU's source, or the input itself).
    pub x: ActId,
    /// The norm weight (a weight) or SiLU's `up` (an activation).
    pub aux: Option<Aux>,
    /// The made input, written back (the norm's or SiLU's output).
    pub side: Option<ActId>,
    /// Norm epsilon.
    pub eps: f32,
    /// Tokens.
    pub rows: usize,
    /// Add to the output instead of overwriting it (one weight only).
    pub accumulate: bool,
    /// Weights and the outputs they write.
    pub targets: Vec<(WeightId, ActId)>,
    /// Rotary embedding of the outputs whose bit is set in the mask (adjacent pairs only).
    pub rope: Option<(RopeSpec, u32)>,
}

/// What the input transform reads besides `x`.
#[derive(Debug, Clone, Copy)]
pub enum Aux {
    /// A norm weight.
    Weight(WeightId),
    /// An activation.
    Act(ActId),
}

/// What the backend knows of a weight when fusing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightShape {
    /// Storage format.
    pub bits: u32,
    /// Elements per row.
    pub cols: usize,
    /// Bound in one piece.
    pub whole: bool,
}

impl FusedMatmul {
    /// A single mat-mul of `x` as is.
    pub fn plain(w: WeightId, x: ActId, rows: usize, out: ActId, accumulate: bool) -> Self {
        Self {
            input: MatmulInput::Plain,
            x,
            aux: None,
            side: None,
            eps: 0.0,
            rows,
            accumulate,
            targets: vec![(w, out)],
            rope: None,
        }
    }

    /// Every buffer the dispatch reads.
    fn reads(&self) -> impl Iterator<Item = ActId> + '_ {
        let aux = match self.aux {
            Some(Aux::Act(a)) => Some(a),
            _ => None,
        };
        std::iter::once(self.x).chain(aux)
    }

    /// Every buffer the dispatch writes.
    fn writes(&self) -> impl Iterator<Item = ActId> + '_ {
        self.targets.iter().map(|&(_, o)| o).chain(self.side)
    }
}

/// `pending` followed by a rotary embedding of `x` as one dispatch, or `None`: the rotation of
/// a mat-mul's output (adjacent pairs, all factors one, not accumulated), or of a second tensor.
pub fn fuse_rope(pending: &Pending, x: ActId, spec: RopeSpec) -> Option<Pending> {
    let key = |s: &RopeSpec| (s.head_dim, s.pos, s.n, s.base.to_bits(), s.interleaved, s.factors);
    let same = |s: &RopeSpec| key(s) == key(&spec);
    match *pending {
        Pending::Matmul(ref m) if spec.interleaved && spec.factors.is_none() && !m.accumulate && spec.n == m.rows => {
            let k = m.targets.iter().position(|&(_, out)| out == x)?;
            let mask = match m.rope {
                None => 0,
                Some((s, mask)) if same(&s) && mask & (1 << k) == 0 => mask,
                Some(_) => return None,
            };
            let mut m = m.clone();
            m.rope = Some((spec, mask | 1 << k));
            Some(Pending::Matmul(m))
        }
        Pending::Rope { x: first, y: None, spec: s } if first != x && same(&s) => {
            Some(Pending::Rope { x: first, y: Some(x), spec })
        }
        _ => None,
    }
}

/// `pending` followed by a mat-mul of `w` (shape `shape`; `first` is the shape of the pending
/// mat-mul's first weight) as one dispatch, or `None` when they cannot be one.
pub fn fuse_matmul(
    pending: &Pending,
    first: Option<WeightShape>,
    shape: WeightShape,
    (w, x, rows, out, accumulate): (WeightId, ActId, usize, ActId, bool),
) -> Option<FusedMatmul> {
    let fused = match *pending {
        Pending::Norm { x: src, weight, spec, whole_rows: true, out: normed }
            if normed == x && spec.rows == rows && !spec.accumulate && shape.whole =>
        {
            FusedMatmul {
                input: MatmulInput::Norm,
                x: src,
                aux: Some(Aux::Weight(weight)),
                side: Some(normed),
                eps: spec.eps,
                rows,
                accumulate,
                targets: vec![(w, out)],
                rope: None,
            }
        }
        Pending::Glu { gate, up, act: Activation::Silu, rows: r, out: product } if product == x && r == rows && shape.whole => {
            FusedMatmul {
                input: MatmulInput::Silu,
                x: gate,
                aux: Some(Aux::Act(up)),
                side: Some(product),
                eps: 0.0,
                rows,
                accumulate,
                targets: vec![(w, out)],
                rope: None,
            }
        }
        Pending::Matmul(ref m)
            if m.targets.len() < 3
                && m.rope.is_none()
                && m.side.or(Some(m.x)) == Some(x)
                && m.rows == rows
                && !m.accumulate
                && !accumulate
                && first == Some(shape)
                && shape.whole =>
        {
            let mut m = m.clone();
            m.targets.push((w, out));
            m
        }
        _ => return None,
    };
    // One dispatch cannot read and write a buffer, nor write one twice.
    let writes: Vec<ActId> = fused.writes().collect();
    let distinct = writes.iter().enumerate().all(|(i, a)| !writes[..i].contains(a));
    (distinct && !fused.reads().any(|r| writes.contains(&r))).then_some(fused)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q4: WeightShape = WeightShape { bits: 4, cols: 576, whole: true };

    /// RMSNorm of `ActId(0)` into `ActId(1)` over whole rows.
    fn norm_of(rows: usize) -> Pending {
        let spec = NormSpec { eps: 1e-5, rows, accumulate: false };
        Pending::Norm { x: ActId(0), weight: WeightId(9), spec, whole_rows: true, out: ActId(1) }
    }

    #[test]
    fn norm_then_three_matmuls_of_its_output_fuse() {
        let norm = norm_of(1);
        let q = fuse_matmul(&norm, None, Q4, (WeightId(1), ActId(1), 1, ActId(2), false)).expect("norm + q");
        let k = fuse_matmul(&Pending::Matmul(q), Some(Q4), Q4, (WeightId(2), ActId(1), 1, ActId(3), false)).expect("+ k");
        let v = fuse_matmul(&Pending::Matmul(k), Some(Q4), Q4, (WeightId(3), ActId(1), 1, ActId(4), false)).expect("+ v");
        assert_eq!(v.targets.len(), 3);
        assert_eq!((v.x, v.side), (ActId(0), Some(ActId(1))));
        let fourth = fuse_matmul(&Pending::Matmul(v), Some(Q4), Q4, (WeightId(4), ActId(1), 1, ActId(5), false));
        assert!(fourth.is_none(), "at most three weights");
    }

    #[test]
    fn rotations_of_fused_outputs_fuse_once_each() {
        let norm = norm_of(1);
        let q = fuse_matmul(&norm, None, Q4, (WeightId(1), ActId(1), 1, ActId(2), false)).unwrap();
        let k = fuse_matmul(&Pending::Matmul(q), Some(Q4), Q4, (WeightId(2), ActId(1), 1, ActId(3), false)).unwrap();
        let spec = RopeSpec { head_dim: 64, pos: 5, n: 1, base: 1e4, interleaved: true, factors: None };
        let rq = fuse_rope(&Pending::Matmul(k), ActId(2), spec).expect("rope q");
        let rk = fuse_rope(&rq, ActId(3), spec).expect("rope k");
        let Pending::Matmul(m) = &rk else { panic!("still one mat-mul") };
        assert_eq!(m.rope.map(|r| r.1), Some(0b11));
        assert!(fuse_rope(&rk, ActId(3), spec).is_none(), "twice is two rotations");
        assert!(fuse_rope(&rq, ActId(3), RopeSpec { pos: 6, ..spec }).is_none(), "another position");
        assert!(fuse_rope(&rq, ActId(3), RopeSpec { interleaved: false, ..spec }).is_none(), "halves pair rows apart");
        let scaled = RopeSpec { factors: Some(WeightId(9)), ..spec };
        let plain = fuse_matmul(&norm, None, Q4, (WeightId(1), ActId(1), 1, ActId(2), false)).unwrap();
        assert!(fuse_rope(&Pending::Matmul(plain), ActId(2), scaled).is_none(), "frequency divisors are a rope of their own");
        assert!(fuse_matmul(&rk, Some(Q4), Q4, (WeightId(3), ActId(1), 1, ActId(4), false)).is_none(), "rotated: closed");
    }

    #[test]
    fn hazards_and_mismatches_do_not_fuse() {
        let norm = norm_of(2);
        // Writes the norm's source.
        assert!(fuse_matmul(&norm, None, Q4, (WeightId(1), ActId(1), 2, ActId(0), true)).is_none());
        // Reads something else, or other rows.
        assert!(fuse_matmul(&norm, None, Q4, (WeightId(1), ActId(7), 2, ActId(2), false)).is_none());
        assert!(fuse_matmul(&norm, None, Q4, (WeightId(1), ActId(1), 1, ActId(2), false)).is_none());
        let q = fuse_matmul(&norm, None, Q4, (WeightId(1), ActId(1), 2, ActId(2), false)).unwrap();
        let q8 = WeightShape { bits: 8, ..Q4 };
        // Another format, the same output twice, or accumulation.
        assert!(fuse_matmul(&Pending::Matmul(q.clone()), Some(Q4), q8, (WeightId(2), ActId(1), 2, ActId(3), false)).is_none());
        assert!(fuse_matmul(&Pending::Matmul(q.clone()), Some(Q4), Q4, (WeightId(2), ActId(1), 2, ActId(2), false)).is_none());
        assert!(fuse_matmul(&Pending::Matmul(q), Some(Q4), Q4, (WeightId(2), ActId(1), 2, ActId(3), true)).is_none());
        // A per-head norm, or one added to its output, is not the mat-mul's input transform;
        // nor is a GELU product.
        let Pending::Norm { spec, .. } = norm_of(2) else { unreachable!() };
        let per_head = Pending::Norm { x: ActId(0), weight: WeightId(9), spec, whole_rows: false, out: ActId(1) };
        assert!(fuse_matmul(&per_head, None, Q4, (WeightId(1), ActId(1), 2, ActId(2), false)).is_none());
        let added = NormSpec { accumulate: true, ..spec };
        let added = Pending::Norm { x: ActId(0), weight: WeightId(9), spec: added, whole_rows: true, out: ActId(1) };
        assert!(fuse_matmul(&added, None, Q4, (WeightId(1), ActId(1), 2, ActId(2), false)).is_none());
        let gelu = Pending::Glu { gate: ActId(0), up: ActId(5), act: Activation::GeluTanh, rows: 2, out: ActId(1) };
        assert!(fuse_matmul(&gelu, None, Q4, (WeightId(1), ActId(1), 2, ActId(2), true)).is_none());
        let silu = Pending::Glu { gate: ActId(0), up: ActId(5), act: Activation::Silu, rows: 2, out: ActId(1) };
        assert!(fuse_matmul(&silu, None, Q4, (WeightId(1), ActId(1), 2, ActId(2), true)).is_some());
    }
}
