//! The conversation a front end is in, kept in the chat history: the one rule for what is saved.
//! Each exchange (a question and its non-empty reply) is saved when the reply ends, into the
//! open conversation, or into a new one that the first exchange starts.

use std::collections::HashMap;

use super::Event;
use crate::history::{History, HistoryError, SavedMessage};

/// The open conversation and the history it is saved in.
pub struct Conversation {
    history: History,
    open: Option<i64>,
    /// Questions of the turns whose reply has not ended yet.
    asked: HashMap<u64, String>,
}

impl Conversation {
    /// A new conversation in `history`, started by its first exchange.
    pub fn new(history: History) -> Self {
        Self { history, open: None, asked: HashMap::new() }
    }

    /// The open conversation, once it has been opened or has an exchange.
    pub fn id(&self) -> Option<i64> {
        self.open
    }

    /// The history it is saved in (to list and read conversations).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Continues conversation `id`; its messages.
    pub fn open(&mut self, id: i64) -> Result<Vec<SavedMessage>, HistoryError> {
        let messages = self.history.messages(id)?;
        self.open = Some(id);
        Ok(messages)
    }

    /// The next exchange starts a new conversation.
    pub fn start_new(&mut self) {
        self.open = None;
    }

    /// Renames conversation `id` to `title`.
    pub fn rename(&mut self, id: i64, title: &str) -> Result<(), HistoryError> {
        self.history.rename(id, title)
    }

    /// Deletes conversation `id`; true if it was the open one (the next exchange then starts a
    /// new one).
    pub fn delete(&mut self, id: i64) -> Result<bool, HistoryError> {
        self.history.delete(id)?;
        let was_open = self.open == Some(id);
        if was_open {
            self.open = None;
        }
        Ok(was_open)
    }

    /// Forgets the questions still waiting for a reply: a newly started assistant numbers its
    /// turns afresh.
    pub fn forget_turns(&mut self) {
        self.asked.clear();
    }

    /// Follows the assistant's events: a turn's question is remembered, and its reply saved with
    /// it when the reply ends (`Some`: the conversation's id, or why it was not saved). An empty
    /// reply is not an exchange and is not saved; nor is a reply to a question never seen.
    pub fn record(&mut self, event: &Event) -> Option<Result<i64, HistoryError>> {
        match event {
            Event::Question { turn, text, .. } => {
                self.asked.insert(*turn, text.clone());
                None
            }
            Event::Reply { turn, text, .. } => {
                let question = self.asked.remove(turn)?;
                if text.trim().is_empty() {
                    return None;
                }
                let saved = self.history.save_exchange(self.open, &question, text);
                if let Ok(id) = saved {
                    self.open = Some(id);
                }
                Some(saved)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::StopReason;

    fn question(turn: u64, text: &str) -> Event {
        Event::Question { turn, text: text.into(), spoken: false }
    }

    fn reply(turn: u64, text: &str) -> Event {
        Event::Reply { turn, text: text.into(), stop: StopReason::EndOfGeneration }
    }

    /// Exchanges go into one conversation until a new one is started; an empty reply, or one to
    /// a question never seen, saves nothing; deleting the open conversation starts a new one.
    #[test]
    fn each_exchange_is_saved_once_its_reply_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Conversation::new(History::open(&dir.path().join("history.sqlite")).unwrap());
        assert!(c.record(&question(1, "Hi?")).is_none());
        let first = c.record(&reply(1, "Hello.")).unwrap().unwrap();
        c.record(&question(2, "And you?"));
        assert_eq!(c.record(&reply(2, "Fine.")).unwrap().unwrap(), first);
        c.record(&question(3, "Silence?"));
        assert!(c.record(&reply(3, "  ")).is_none(), "an empty reply is not an exchange");
        assert!(c.record(&reply(9, "Who asked?")).is_none());
        assert_eq!(c.history().messages(first).unwrap().len(), 4);

        c.start_new();
        c.record(&question(4, "New topic?"));
        let second = c.record(&reply(4, "Sure.")).unwrap().unwrap();
        assert_ne!(second, first);
        assert!(c.delete(second).unwrap() && c.id().is_none());
        assert!(!c.delete(first).unwrap());
    }
}
