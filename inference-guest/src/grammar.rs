//! JSON output constrained by a schema. [llguidance] (the constraint engine llama.cpp and vLLM
//! use) compiles the schema into a grammar and, at each step, computes the tokens that keep the
//! text a valid prefix; the host applies that bitset to the logits before top-k (`compute.mask`),
//! so the valid token is found even when it is far outside the unconstrained top candidates.
//!
//! [llguidance]: https://github.com/guidance-ai/llguidance

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::earley::SlicedBiasComputer;
use llguidance::toktrie::{self, InferenceCapabilities, SimpleVob, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// The vocabulary as llguidance sees it: each token's bytes, control tokens marked as special.
struct Vocabulary {
    trie: TokTrie,
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Only used for forced tokens, which Murmur does not take: the trie's greedy split is enough.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        self.trie.greedy_tokenize(s)
    }
}

/// Compiles schemas for one model's vocabulary.
pub struct Grammars {
    factory: ParserFactory,
}

impl Grammars {
    /// Builds the vocabulary's token trie and lexer slices (done once, on the first constrained
    /// request: it takes a moment on a large vocabulary).
    pub fn new(tokenizer: &Tokenizer) -> Result<Self> {
        let words = tokenizer.byte_words();
        let eog = tokenizer.eog();
        let first =
            *eog.first().ok_or_else(|| Error::Invalid("the model has no end-of-generation token to end JSON with".into()))?;
        let info = TokRxInfo::new(words.len() as u32, first);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(eog);
        let env: toktrie::TokEnv = Arc::new(Vocabulary { trie });
        let mut factory = ParserFactory::new(&env, InferenceCapabilities::default(), &SlicedBiasComputer::general_slices())
            .map_err(|e| Error::Invalid(format!("cannot build the grammar engine for this vocabulary: {e}")))?;
        factory.quiet();
        Ok(Self { factory })
    }

    /// A fresh constraint for one reply: JSON valid against `schema` (`{}`: any JSON value).
    pub fn constrain(&self, schema: &str) -> Result<Constraint> {
        let invalid = |e: &dyn std::fmt::Display| Error::Invalid(format!("the JSON schema cannot be used: {e}"));
        let mut schema: serde_json::Value = serde_json::from_str(schema).map_err(|e| invalid(&e))?;
        if schema.as_object().is_some_and(|s| !s.contains_key("x-guidance")) {
            whitespace_bounded().apply_to(&mut schema);
        }
        let parser = self.factory.create_parser(TopLevelGrammar::from_json_schema(schema)).map_err(|e| invalid(&e))?;
        Ok(Constraint { matcher: Matcher::new(Ok(parser)) })
    }
}

/// JSON may be laid out as the model likes, but a gap between tokens holds at most one line
/// break and an indent: a small model otherwise can fall into writing whitespace for ever.
fn whitespace_bounded() -> JsonCompileOptions {
    JsonCompileOptions { whitespace_pattern: Some(r"[ \t]{0,4}(\r?\n[ \t]{0,24})?".into()), ..JsonCompileOptions::default() }
}

/// One reply's place in its grammar.
pub struct Constraint {
    matcher: Matcher,
}

impl Constraint {
    /// Whether the text is complete and nothing more may follow.
    pub fn finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// The tokens that may come next, as a bitset over the vocabulary (end-of-generation
    /// tokens included once the text is complete).
    pub fn allowed(&mut self) -> Result<SimpleVob> {
        self.matcher.compute_mask().map_err(|e| Error::Invalid(format!("the grammar failed: {e}")))
    }

    /// Moves past token `id` (one the last mask allowed).
    pub fn accept(&mut self, id: u32) -> Result<()> {
        self.matcher.consume_token(id).map_err(|e| Error::Invalid(format!("the grammar failed: {e}")))
    }
}
