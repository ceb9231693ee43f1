//! Token selection: greedy, or temperature with top-k, top-p and min-p, from a seeded generator.

use crate::bindings::exports::murmur::llm::llm::Sampling;
use crate::bindings::murmur::llm::compute::Candidate;

/// Candidates read back when top-k is off: beyond these the probability mass is negligible.
pub const DEFAULT_CANDIDATES: u32 = 128;

/// A seeded sampler for one request.
pub struct Sampler {
    state: u64,
    probs: Vec<f32>,
}

impl Sampler {
    /// A sampler whose choices depend only on `seed` and the logits.
    pub fn new(seed: u64) -> Self {
        Self { state: seed ^ 0x9E37_79B9_7F4A_7C15, probs: Vec::with_capacity(DEFAULT_CANDIDATES as usize) }
    }

    /// How many candidates the host should return for `p`.
    pub fn wanted(p: &Sampling) -> u32 {
        match (p.temperature <= 0.0, p.top_k) {
            (true, _) => 1,
            (false, 0) => DEFAULT_CANDIDATES,
            // The host caps how many it reads back (`top-k`).
            (false, k) => k,
        }
    }

    /// SplitMix64: small, fast, and the same everywhere.
    fn next_f32(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Picks a token from `cands` (best first), following llama.cpp's chain:
    /// top-k → top-p → min-p → temperature → draw.
    pub fn pick(&mut self, cands: &[Candidate], p: &Sampling) -> u32 {
        // Tokens a grammar masked out come last, at -infinity: never candidates.
        let cands = &cands[..cands.iter().take_while(|c| c.logit.is_finite()).count().max(1)];
        if p.temperature <= 0.0 || cands.len() == 1 {
            return cands[0].id;
        }
        let max = cands[0].logit;
        self.probs.clear();
        self.probs.extend(cands.iter().map(|c| (c.logit - max).exp()));
        let total: f32 = self.probs.iter().sum();
        let mut keep = self.probs.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, pr) in self.probs.iter().enumerate() {
                acc += pr / total;
                if acc >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            keep = keep.min(self.probs.iter().take_while(|&&pr| pr >= p.min_p).count().max(1));
        }
        self.probs.truncate(keep);
        for (pr, c) in self.probs.iter_mut().zip(cands) {
            *pr = ((c.logit - max) / p.temperature).exp();
        }
        let total: f32 = self.probs.iter().sum();
        let mut r = self.next_f32() * total;
        for (i, pr) in self.probs.iter().enumerate() {
            r -= pr;
            if r <= 0.0 {
                return cands[i].id;
            }
        }
        cands[keep - 1].id
    }
}
