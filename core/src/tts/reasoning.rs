//! A reply's reasoning block (`<think>…</think>`, as Qwen3 and other reasoning models write it)
//! is shown to the user folded away, and never spoken: this filter takes it out of the streamed
//! text before the text reaches speech.

/// Where a reasoning block opens and closes.
const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Streamed reply text in, the part outside reasoning blocks out, with tags split across
/// pieces of the stream recognised.
#[derive(Debug, Default)]
pub struct ReasoningFilter {
    /// Text held back because it may be the start of a tag.
    held: String,
    /// Inside a reasoning block.
    thinking: bool,
}

impl ReasoningFilter {
    /// Adds streamed text; returns what of it (and of what was held back) is to be spoken.
    pub fn push(&mut self, text: &str) -> String {
        self.held.push_str(text);
        let mut out = String::new();
        loop {
            let tag = if self.thinking { CLOSE } else { OPEN };
            if let Some(at) = self.held.find(tag) {
                if !self.thinking {
                    out.push_str(&self.held[..at]);
                }
                self.held.drain(..at + tag.len());
                self.thinking = !self.thinking;
                continue;
            }
            // Keep back the longest tail that could begin the tag.
            let keep = (1..tag.len()).rev().find(|&n| self.held.ends_with(&tag[..n])).unwrap_or(0);
            let cut = self.held.len() - keep;
            if !self.thinking {
                out.push_str(&self.held[..cut]);
            }
            self.held.drain(..cut);
            return out;
        }
    }

    /// The reply is over: what was held back, unless it was reasoning.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.held);
        if self.thinking {
            String::new()
        } else {
            rest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_is_left_out_even_when_its_tags_arrive_in_pieces() {
        let mut f = ReasoningFilter::default();
        let pieces = ["<th", "ink>\nThe user asks", " about France.</", "think>\n\nParis is", " the capital. a <b", "> c <"];
        let spoken: String = pieces.iter().map(|p| f.push(p)).collect::<String>() + &f.finish();
        assert_eq!(spoken, "\n\nParis is the capital. a <b> c <");
        let mut unfinished = ReasoningFilter::default();
        assert_eq!(unfinished.push("Yes. <think>hmm"), "Yes. ");
        assert_eq!(unfinished.finish(), "", "an unclosed block is still reasoning");
    }
}
