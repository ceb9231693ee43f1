//! Chat templates: the model's `tokenizer.chat_template` rendered with minijinja; where the file
//! has none, its family's own (gemma3's and phi3's turns), else ChatML.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};

use crate::bindings::exports::murmur::llm::llm::Message;
use crate::error::{Error, Result};

/// ChatML, used when the model names no template.
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Gemma's turns, used when a gemma3 file names no template (the base models): a system prompt
/// opens the first user turn, as Gemma's own template does, and the assistant is `model`.
const GEMMA: &str = "{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}\
{% if m.role == 'system' %}{% set ns.system = m.content | trim ~ '\n\n' %}\
{% else %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n\
{% if m.role == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}{{ m.content | trim }}<end_of_turn>\n\
{% endif %}{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

/// Phi-3's turns, used when a phi3 file names no template.
const PHI3: &str = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}\
{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/// The template a model is rendered with: its own, or its family's when the file has none.
pub fn source_for<'a>(own: Option<&'a str>, arch: &str) -> &'a str {
    match (own, arch) {
        (Some(own), _) => own,
        (None, "gemma3") => GEMMA,
        (None, "phi3") => PHI3,
        (None, _) => CHATML,
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

fn raise_exception(msg: String) -> std::result::Result<String, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
}

impl ChatTemplate {
    /// Compiles `source`; `bos`/`eos` are the special tokens' texts.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Template(format!("the model's chat template does not compile: {e}")))?;
        Ok(Self { env, bos: bos.to_string(), eos: eos.to_string() })
    }

    /// The prompt text for `messages`, ending with the cue for the assistant's reply. When the
    /// last message is the assistant's, the reply continues it (a prefill, or a reply resumed
    /// after the host changed devices).
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        if let Some((last, earlier)) = messages.split_last().filter(|(m, _)| m.role == "assistant") {
            return Ok(self.render(earlier)? + &last.content);
        }
        let msgs: Vec<_> = messages.iter().map(|m| context! { role => m.role, content => m.content }).collect();
        let tmpl = self.env.get_template("chat").expect("added in new");
        tmpl.render(context! {
            messages => msgs,
            add_generation_prompt => true,
            // Qwen3's templates: the assistant answers without a reasoning block.
            enable_thinking => false,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| Error::Template(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into() }
    }

    #[test]
    fn gemma_turns_fold_the_system_prompt_into_the_first_user_turn() {
        let t = ChatTemplate::new(source_for(None, "gemma3"), "<bos>", "<eos>").unwrap();
        let chat =
            [message("system", "Be brief."), message("user", " Hi "), message("assistant", "Hello."), message("user", "Bye")];
        assert_eq!(
            t.render(&chat).unwrap(),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n\
             <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
        assert!(source_for(None, "qwen2").contains("<|im_start|>"), "ChatML elsewhere");
    }

    #[test]
    fn templates_are_told_to_leave_thinking_off() {
        // Qwen3's templates open an empty reasoning block when thinking is off.
        let qwen3 = "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}";
        let t = ChatTemplate::new(qwen3, "", "").unwrap();
        assert_eq!(t.render(&[message("user", "Hi")]).unwrap(), "<think>\n\n</think>\n\n");
    }
}
