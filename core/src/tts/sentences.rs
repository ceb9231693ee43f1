//! Cutting a streamed reply into sentences to speak while the rest is still being generated, and
//! turning each into text worth reading aloud.
//!
//! A cut is made at `.`, `!`, `?` or `…` followed by white space, once the next word has started
//! (so "Dr. Smith" can be told from "Paris. It"), and at every line break. Not cut: decimals and
//! URLs (no space after the dot), known abbreviations ("e.g.", "Dr."), initials ("J. R. R."),
//! acronyms ("U.S."), a dot before a lower-case word, and the numbers of an inline list
//! ("1. first 2. second"). A fenced code block is kept whole, and [`speakable`] says it is on
//! screen instead of reading it out symbol by symbol. A run of text with no sentence end is cut
//! at a clause once it grows past [`MAX_CHARS`], so speech never waits on a rambling sentence.
//! For speech, [`SentenceSplitter::for_speech`] also hands out a reply's first clause on its own
//! ("Sure, …", "The capital of France, …"), so the voice starts before the first sentence ends.

/// Longest piece held back waiting for a sentence end.
pub const MAX_CHARS: usize = 240;

/// What is said instead of a code block.
const CODE_NOTE: &str = "The code is on the screen.";

/// Abbreviations after which a dot does not end a sentence (lower case, inner dots kept).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "e.g", "i.e", "cf", "approx", "ca", "fig", "no", "gen", "gov",
    "lt", "col", "capt", "sgt", "rev", "hon", "dept", "est",
];

/// Marks that end a clause inside a sentence (each followed by its space).
const CLAUSE_MARKS: [&str; 5] = [", ", "; ", ": ", " – ", " — "];

/// Fewest words a first clause needs to be spoken on its own.
const FIRST_CLAUSE_WORDS: usize = 2;

/// Words a speaker may pause before ("The capital of France | is Paris."), once a phrase of
/// [`PHRASE_WORDS`] precedes them.
const PAUSE_WORDS: [&str; 13] = ["is", "are", "was", "were", "and", "but", "or", "because", "which", "who", "that", "in", "with"];

/// Fewest words before a pause word for the phrase to be spoken on its own.
const PHRASE_WORDS: usize = 4;

/// Collects streamed text and hands back each sentence as soon as it is complete.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    pending: String,
    /// Whether the first piece handed out may be a clause (nothing handed out yet).
    first_clause: bool,
}

impl SentenceSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty splitter for a reply that is spoken: its first piece ends at the first clause
    /// mark (once it has a few words), so speech starts as early as it can.
    pub fn for_speech() -> Self {
        Self { pending: String::new(), first_clause: true }
    }

    /// Adds generated text; returns the sentences it completed, in order.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        self.drain(false)
    }

    /// The reply is over: returns whatever is left, as sentences.
    pub fn finish(&mut self) -> Vec<String> {
        self.drain(true)
    }

    fn drain(&mut self, at_end: bool) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let start = self.pending.len() - self.pending.trim_start().len();
            let piece = &self.pending[start..];
            if piece.is_empty() {
                self.pending.clear();
                break;
            }
            let sentence_cut = cut(piece, at_end);
            let clause = self.first_clause.then(|| first_clause_cut(piece)).flatten();
            let early = clause.filter(|&(at, _)| sentence_cut.is_none_or(|(end, _)| at < end));
            let Some((end, next)) = early.or(sentence_cut) else {
                if at_end {
                    out.push(piece.trim_end().to_string());
                    self.pending.clear();
                }
                break;
            };
            let sentence = piece[..end].trim_end();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
                self.first_clause = false;
            }
            self.pending.drain(..start + next);
        }
        out
    }
}

/// The first sentence of `s` (which starts with a non-space): the byte where it ends and where
/// the rest begins; `None` while it is not known to be complete.
fn cut(s: &str, at_end: bool) -> Option<(usize, usize)> {
    if s.starts_with("```") {
        return fence_end(s, at_end).map(|e| (e, e));
    }
    let inline_list = starts_with_list_number(s);
    for (i, c) in s.char_indices() {
        if c == '\n' {
            return Some((i, i + 1));
        }
        if !matches!(c, '.' | '!' | '?' | '…') {
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(d) = s[end..].chars().next().filter(|d| CLOSERS.contains(*d)) {
            end += d.len_utf8();
        }
        let rest = &s[end..];
        let after = rest.trim_start();
        let space = &rest[..rest.len() - after.len()];
        if space.contains('\n') {
            return Some((end, end + space.len()));
        }
        if rest.is_empty() || (!space.is_empty() && after.is_empty()) {
            // Whether this ends the sentence depends on what comes next.
            return at_end.then_some((end, s.len()));
        }
        if space.is_empty() {
            continue;
        }
        let next = after.chars().next().expect("not empty");
        if ends_sentence(&s[..i], c, next, inline_list) {
            return Some((end, end + space.len()));
        }
    }
    if s.chars().count() > MAX_CHARS {
        return Some(clause_cut(s));
    }
    None
}

/// Characters that may follow a sentence's final mark and still belong to it.
const CLOSERS: &str = "\"')]*”’.!?";

/// Whether `mark`, after the text `before` and followed by a space and `next`, ends a sentence.
fn ends_sentence(before: &str, mark: char, next: char, inline_list: bool) -> bool {
    if next.is_lowercase() {
        return false;
    }
    if mark != '.' {
        return true;
    }
    let word = before.rsplit(|c: char| c.is_whitespace() || "([\"'“‘".contains(c)).next().unwrap_or("");
    let lower = word.to_lowercase();
    let single_letters = word.split('.').all(|p| p.chars().count() == 1 && p.chars().all(char::is_alphabetic));
    let is_number = !word.is_empty() && word.chars().all(|c| c.is_ascii_digit());
    let initial_or_acronym = single_letters && (word.contains('.') || word.chars().all(char::is_uppercase));
    !(ABBREVIATIONS.contains(&lower.as_str()) || initial_or_acronym || (inline_list && is_number))
}

/// Whether `s` opens with a list number ("1. ", "12. ").
fn starts_with_list_number(s: &str) -> bool {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    (1..=3).contains(&digits) && s[digits..].starts_with(". ")
}

/// The end of the fenced code block that `s` opens (through its closing fence line).
fn fence_end(s: &str, at_end: bool) -> Option<usize> {
    let mut line_start = s.find('\n')? + 1;
    loop {
        let line_end = s[line_start..].find('\n').map(|k| line_start + k);
        if s[line_start..line_end.unwrap_or(s.len())].trim_start().starts_with("```") {
            return line_end.or(at_end.then_some(s.len()));
        }
        line_start = line_end? + 1;
    }
}

/// The earliest cut of `s` at a pause: after a clause mark once [`FIRST_CLAUSE_WORDS`] precede
/// it, or before a complete pause word once [`PHRASE_WORDS`] do; never inside a code block.
fn first_clause_cut(s: &str) -> Option<(usize, usize)> {
    if s.starts_with("```") {
        return None;
    }
    let marks = CLAUSE_MARKS.iter().flat_map(|p| s.match_indices(p).map(move |(k, _)| (k + p.len() - 1, FIRST_CLAUSE_WORDS)));
    let pauses = s.match_indices(' ').filter_map(|(k, _)| {
        let rest = &s[k + 1..];
        let word = &rest[..rest.find(char::is_whitespace)?];
        PAUSE_WORDS.contains(&word.to_lowercase().as_str()).then_some((k, PHRASE_WORDS))
    });
    let at = marks.chain(pauses).filter(|&(at, words)| s[..at].split_whitespace().count() >= words).map(|(at, _)| at).min()?;
    Some((at, at + 1))
}

/// A cut after the last clause mark (or else the last space) of an over-long `s`.
fn clause_cut(s: &str) -> (usize, usize) {
    let limit = s.char_indices().nth(MAX_CHARS).map_or(s.len(), |(i, _)| i);
    let head = &s[..limit];
    let at = CLAUSE_MARKS
        .iter()
        .filter_map(|p| head.rfind(p).map(|k| k + p.len() - 1))
        .max()
        .or_else(|| head.rfind(' '))
        .unwrap_or(limit);
    (at, at)
}

/// The text of `sentence` as it should be read aloud: Markdown marks dropped, links read by
/// their text, bare URLs by their host, code blocks announced instead of read; `None` when
/// nothing is left worth saying.
pub fn speakable(sentence: &str) -> Option<String> {
    let s = sentence.trim();
    if s.starts_with("```") {
        return Some(CODE_NOTE.into());
    }
    let s = s.trim_start_matches(['#', '>', ' ']);
    let s = ["- ", "* ", "+ "].iter().find_map(|m| s.strip_prefix(m)).unwrap_or(s);
    let words: Vec<String> = link_texts(s).split_whitespace().map(spoken_word).collect();
    let text = words.join(" ");
    text.chars().any(char::is_alphanumeric).then_some(text)
}

/// `[text](url)` → `text`.
fn link_texts(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let link = rest[open..].find("](").and_then(|mid| {
            let close = rest[open + mid..].find(')')?;
            Some((open + mid, open + mid + close))
        });
        let Some((mid, close)) = link else { break };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..mid]);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// One word as spoken: emphasis and code marks dropped, a URL shortened to its host.
fn spoken_word(word: &str) -> String {
    let word: String = word.chars().filter(|c| !matches!(c, '*' | '`')).collect();
    let word = word.trim_matches('_');
    let core = word.trim_end_matches(|c: char| ".,;:!?)\"'".contains(c));
    let tail = &word[core.len()..];
    let url = core.split_once("://").map(|(_, rest)| rest).or_else(|| core.starts_with("www.").then_some(core));
    match url {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            format!("{}{tail}", host.trim_start_matches("www."))
        }
        None => word.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in small uneven pieces, as tokens arrive.
    fn split(text: &str) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(3) {
            out.extend(s.push(&piece.iter().collect::<String>()));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn cuts_plain_sentences_as_soon_as_the_next_one_starts() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("The capital of France is Paris.").is_empty(), "the end is not known yet");
        assert_eq!(s.push(" It"), ["The capital of France is Paris."]);
        assert!(s.push(" is lovely!").is_empty());
        assert_eq!(s.push(" Go?\n"), ["It is lovely!", "Go?"]);
        assert!(s.finish().is_empty());
    }

    #[test]
    fn keeps_abbreviations_decimals_and_initials_inside_sentences() {
        assert_eq!(
            split("Dr. Smith met J. R. R. Tolkien in the U.S. Army. Pi is 3.14, e.g. roughly. Fruit, e.g. Apples. Done."),
            ["Dr. Smith met J. R. R. Tolkien in the U.S. Army.", "Pi is 3.14, e.g. roughly.", "Fruit, e.g. Apples.", "Done."]
        );
        assert_eq!(
            split("It costs approx. five euros. Wait... what? Yes."),
            ["It costs approx. five euros.", "Wait... what?", "Yes."]
        );
        assert_eq!(split("The answer is 7. It is prime."), ["The answer is 7.", "It is prime."]);
    }

    #[test]
    fn keeps_lists_and_urls_whole() {
        assert_eq!(split("1. first 2. second"), ["1. first 2. second"]);
        assert_eq!(split("1. Paris is big. 2. Rome is old."), ["1. Paris is big.", "2. Rome is old."]);
        assert_eq!(
            split("Steps:\n1. Open it.\n2. Close it.\n- a bullet"),
            ["Steps:", "1. Open it.", "2. Close it.", "- a bullet"]
        );
        assert_eq!(
            split("See https://example.com/docs/v1.2/index.html for more. Or example.org. Bye."),
            ["See https://example.com/docs/v1.2/index.html for more.", "Or example.org.", "Bye."]
        );
    }

    #[test]
    fn keeps_code_blocks_whole_and_does_not_read_them() {
        let got = split("Here it is:\n```rust\nfn main() {\n    println!(\"hi. there\");\n}\n```\nRun it. Done.");
        assert_eq!(got, ["Here it is:", "```rust\nfn main() {\n    println!(\"hi. there\");\n}\n```", "Run it.", "Done."]);
        assert_eq!(speakable(&got[1]).as_deref(), Some(CODE_NOTE));
        assert_eq!(split("```\nunfinished. code"), ["```\nunfinished. code"], "an unclosed block stays one piece");
    }

    #[test]
    fn cuts_rambling_text_at_a_clause() {
        let long = "word ".repeat(40) + "and then, " + &"more ".repeat(20);
        let got = split(&long);
        assert!(got.len() >= 2, "{got:?}");
        assert!(got[0].ends_with("then,"), "{got:?}");
        assert!(got.iter().all(|s| s.chars().count() <= MAX_CHARS));
    }

    #[test]
    fn for_speech_hands_out_the_first_clause_early() {
        let mut splitter = SentenceSplitter::for_speech();
        let mut got = Vec::new();
        for piece in ["Sure", ", here", " you go", ": the capital", " of France, as", " you know, is Paris. It", " is big."] {
            got.extend(splitter.push(piece));
        }
        got.extend(splitter.finish());
        assert_eq!(got, ["Sure, here you go:", "the capital of France, as you know, is Paris.", "It is big."]);
        let mut splitter = SentenceSplitter::for_speech();
        let mut got = splitter.push("Yes. Then, later, more.");
        got.extend(splitter.finish());
        assert_eq!(got, ["Yes.", "Then, later, more."], "a first sentence ending before any clause mark stays whole");
        let speak = |text: &str| {
            let mut splitter = SentenceSplitter::for_speech();
            let mut got: Vec<String> = text.split_inclusive(' ').flat_map(|t| splitter.push(t)).collect();
            got.extend(splitter.finish());
            got
        };
        assert_eq!(speak("The capital of France is Paris."), ["The capital of France", "is Paris."]);
        assert_eq!(
            speak("There are 8 planets. They orbit the sun and the moon."),
            ["There are 8 planets.", "They orbit the sun and the moon."]
        );
        assert_eq!(speak("12 times 12 equals 144."), ["12 times 12 equals 144."]);
    }

    #[test]
    fn speaks_markdown_as_plain_text() {
        assert_eq!(speakable("## **Paris** is the `capital`.").as_deref(), Some("Paris is the capital."));
        assert_eq!(
            speakable("- See [the docs](https://x.org/a) or https://www.rust-lang.org/learn.").as_deref(),
            Some("See the docs or rust-lang.org.")
        );
        assert_eq!(speakable("---"), None);
        assert_eq!(speakable("It is -5 degrees.").as_deref(), Some("It is -5 degrees."));
        assert_eq!(speakable("  "), None);
    }
}
