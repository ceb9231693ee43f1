//! SentencePiece tokenization of `llama`-model vocabularies (Llama 2, Gemma), as llama.cpp does
//! it: special tokens are split out of the text first, each piece of text between them is
//! merged pair by pair (the merge into the highest-scoring token first, the leftmost among
//! equals), and what no token covers is written as byte tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// SentencePiece's visible space.
const SPACE: &str = "\u{2581}";

/// A special token that is split out of the text before merging.
struct Special {
    text: String,
    id: u32,
    /// A control or unknown token, split out only when special tokens are parsed (user-defined
    /// ones always are).
    control: bool,
    /// Whitespace right after the token is dropped ([`crate::tokenizer::strips_right`]).
    rstrip: bool,
}

/// A SentencePiece vocabulary ready to encode.
pub struct Spm {
    vocab: HashMap<String, u32>,
    scores: Vec<f32>,
    /// The token of each byte: `<0xXX>`, else the byte as text, else the unknown token.
    bytes: [u32; 256],
    /// Longest first, as llama.cpp splits them.
    specials: Vec<Special>,
    /// Whether text after the start or a special token gets a leading space.
    add_space_prefix: bool,
}

/// One span of the text being merged, linked to its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of two adjacent symbols.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bigram {
    /// Higher scores first, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then(other.left.cmp(&self.left))
    }
}

/// A piece of the text after the special tokens are split out.
enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

impl Spm {
    /// The vocabulary of `tokens` (`vocab` maps their texts to ids) with their `scores`, where
    /// `special(i)` says whether token `i` is split out before merging, and if so whether only
    /// when special tokens are parsed; `rstrip(text)` whether whitespace after it is dropped.
    pub fn new(
        tokens: &[String],
        vocab: HashMap<String, u32>,
        scores: Vec<f32>,
        special: impl Fn(usize) -> Option<bool>,
        rstrip: impl Fn(&str) -> bool,
        unknown: u32,
        add_space_prefix: bool,
    ) -> Self {
        let bytes = std::array::from_fn(|b| {
            let hex = format!("<0x{b:02X}>");
            let text = char::from_u32(b as u32).filter(|_| b < 0x80).map(String::from);
            vocab.get(&hex).or_else(|| text.and_then(|t| vocab.get(&t))).copied().unwrap_or(unknown)
        });
        let mut specials: Vec<Special> = (0..tokens.len())
            .filter_map(|i| {
                let text = tokens[i].clone();
                special(i).map(|control| Special { rstrip: rstrip(&text), text, id: i as u32, control })
            })
            .filter(|s| !s.text.is_empty())
            .collect();
        specials.sort_by_key(|s| std::cmp::Reverse(s.text.len()));
        Self { vocab, scores, bytes, specials, add_space_prefix }
    }

    /// The token ids of `text`; with `parse_special`, control tokens' text becomes those tokens.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let mut after_special = true;
        for fragment in self.partition(text, parse_special) {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(t) => {
                    let prefix = if self.add_space_prefix && after_special { SPACE } else { "" };
                    self.merge(&format!("{prefix}{}", t.replace(' ', SPACE)), &mut out);
                    after_special = false;
                }
            }
        }
        out
    }

    /// Splits the special tokens out of `text`, longest first, each at every place it occurs in
    /// what is still text.
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = vec![Fragment::Text(text)];
        if text.is_empty() {
            return Vec::new();
        }
        for special in self.specials.iter().filter(|s| parse_special || !s.control) {
            if !text.contains(special.text.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len());
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = rest.find(special.text.as_str()) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Token(special.id));
                    rest = &rest[at + special.text.len()..];
                    if special.rstrip {
                        rest = rest.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
                    }
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// Merges the characters of `text` into tokens and appends them to `out`.
    fn merge(&self, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> =
            text.char_indices().map(|(start, c)| Symbol { start, len: c.len_utf8(), prev: None, next: None }).collect();
        let count = symbols.len();
        for (i, s) in symbols.iter_mut().enumerate() {
            s.prev = i.checked_sub(1);
            s.next = (i + 1 < count).then_some(i + 1);
        }
        let mut queue = BinaryHeap::new();
        for i in 1..count {
            self.push_bigram(text, &symbols, i - 1, i, &mut queue);
        }
        while let Some(b) = queue.pop() {
            let (left, right) = (symbols[b.left], symbols[b.right]);
            // Skip a merge whose symbols have changed since it was queued.
            if left.len == 0 || right.len == 0 || left.len + right.len != b.len {
                continue;
            }
            symbols[b.left].len += right.len;
            symbols[b.right].len = 0;
            symbols[b.left].next = right.next;
            if let Some(n) = right.next {
                symbols[n].prev = Some(b.left);
            }
            if let Some(p) = left.prev {
                self.push_bigram(text, &symbols, p, b.left, &mut queue);
            }
            if let Some(n) = right.next {
                self.push_bigram(text, &symbols, b.left, n, &mut queue);
            }
        }
        let mut at = (count > 0).then_some(0);
        while let Some(i) = at {
            let s = symbols[i];
            let piece = &text[s.start..s.start + s.len];
            match self.vocab.get(piece) {
                Some(&id) => out.push(id),
                None => out.extend(piece.bytes().map(|b| self.bytes[b as usize])),
            }
            at = s.next;
        }
    }

    /// Queues the merge of adjacent symbols `left` and `right` if their text is a token.
    fn push_bigram(&self, text: &str, symbols: &[Symbol], left: usize, right: usize, queue: &mut BinaryHeap<Bigram>) {
        let (l, r) = (symbols[left], symbols[right]);
        let piece = &text[l.start..r.start + r.len];
        if let Some(&id) = self.vocab.get(piece) {
            let score = self.scores.get(id as usize).copied().unwrap_or(0.0);
            queue.push(Bigram { score, left, right, len: piece.len() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Spm {
        let tokens: Vec<String> =
            ["<unk>", "<s>", "\n", "▁", "a", "b", "c", "ab", "bc", "▁a", "▁ab", "<0x0A>", "<0xE2>", "<0x82>", "<0xAC>"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let scores = vec![0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -2.0, -3.0, -0.5, -4.0, -5.0, 0.0, 0.0, 0.0, 0.0];
        let special = |i: usize| match i {
            0 | 1 => Some(true),
            2 => Some(false),
            _ => None,
        };
        let ids = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        Spm::new(&tokens, ids, scores, special, |t| t == "<s>", 0, true)
    }

    #[test]
    fn merges_the_best_scoring_pair_first() {
        // "abc": "bc" (-0.5) beats "ab" (-3), so a + bc; with a space prefix "▁a" then "bc".
        let spm = vocab();
        assert_eq!(spm.encode("abc", false), vec![9, 8]);
        let no_prefix = Spm { add_space_prefix: false, ..vocab() };
        assert_eq!(no_prefix.encode("abc", false), vec![4, 8]);
    }

    #[test]
    fn unknown_characters_become_byte_tokens_and_specials_split_first() {
        let spm = Spm { add_space_prefix: false, ..vocab() };
        // "€" is E2 82 AC; "\n" is user-defined, split out even without special parsing.
        assert_eq!(spm.encode("a€\nb", false), vec![4, 12, 13, 14, 2, 5]);
        // "<s>" is a control token: text unless special tokens are parsed.
        assert_eq!(spm.encode("<s>a", true), vec![1, 4]);
        assert_ne!(spm.encode("<s>a", false)[0], 1);
        // Whitespace after a token that strips to its right is dropped.
        assert_eq!(spm.encode("<s> \n a", true), vec![1, 4]);
    }
}
