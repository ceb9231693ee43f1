//! Chat history in SQLite: conversations and their messages, with timestamps.
//!
//! The schema is versioned (`PRAGMA user_version`) and migrated in one transaction on open. The
//! file runs in WAL mode with full sync, and each exchange (question and answer) is written in
//! one transaction when the turn completes, so a crash leaves either the whole exchange or none
//! of it, never a damaged file.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// Schema migrations, in order; entry `i` takes the file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
"];

/// Longest conversation title, in characters (taken from the first question).
const TITLE_CHARS: usize = 60;

/// What can go wrong with the history file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite refused.
    #[error("chat history {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The disk holding the history is full.
    #[error("the disk holding the chat history {path} is full, so this exchange was not saved (earlier ones are safe): free some space")]
    DiskFull {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by a newer Murmur.
    #[error("chat history {path} has schema version {found}; this Murmur knows up to {known}: update Murmur (the file is left untouched)")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest this build knows.
        known: usize,
    },
    /// No such conversation.
    #[error("no conversation {0} in the history")]
    NotFound(i64),
    /// A conversation cannot be renamed to nothing.
    #[error("a conversation needs a title")]
    EmptyTitle,
}

impl HistoryError {
    fn from_sqlite(path: &Path, source: rusqlite::Error) -> Self {
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Self::DiskFull { path: path.to_path_buf() },
            _ => Self::Sqlite { path: path.to_path_buf(), source },
        }
    }
}

/// How [`History::export`] writes a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A Markdown document: the title, then each message under `## You` or `## Murmur`.
    Markdown,
    /// JSON: `{"conversation": {id, title, created_ms, updated_ms}, "messages": [{role,
    /// content, created_ms}]}`, as the history stores them.
    Json,
}

impl ExportFormat {
    /// The file name extension (`md`, `json`).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::Json => "json",
        }
    }
}

/// One conversation in a list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ConversationInfo {
    /// Its id.
    pub id: i64,
    /// The start of its first question.
    pub title: String,
    /// When it began, ms since the Unix epoch.
    pub created_ms: i64,
    /// When its last exchange was saved.
    pub updated_ms: i64,
}

/// One saved message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SavedMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
    /// When it was saved, ms since the Unix epoch.
    pub created_ms: i64,
}

/// The history file.
pub struct History {
    db: Connection,
    path: PathBuf,
}

impl History {
    /// Opens (or creates) the history at `path`, migrating it to the current schema.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let err = |source| HistoryError::from_sqlite(path, source);
        let mut db = Connection::open(path).map_err(err)?;
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(err)?;
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
        if version > MIGRATIONS.len() as i64 {
            return Err(HistoryError::TooNew { path: path.to_path_buf(), found: version, known: MIGRATIONS.len() });
        }
        let tx = db.transaction().map_err(err)?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(migration).map_err(err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1).map_err(err)?;
            tracing::info!(path = %path.display(), version = i + 1, "chat history migrated");
        }
        tx.commit().map_err(err)?;
        Ok(Self { db, path: path.to_path_buf() })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        |source| HistoryError::from_sqlite(&self.path, source)
    }

    /// Saves one exchange; `conversation` `None` starts a new one. Returns the conversation's id.
    pub fn save_exchange(&mut self, conversation: Option<i64>, question: &str, answer: &str) -> Result<i64, HistoryError> {
        let now = now_ms();
        let path = self.path.clone();
        let err = |source| HistoryError::from_sqlite(&path, source);
        let tx = self.db.transaction().map_err(err)?;
        let id = match conversation {
            Some(id) => {
                let updated =
                    tx.execute("UPDATE conversations SET updated_ms = ?1 WHERE id = ?2", params![now, id]).map_err(err)?;
                if updated == 0 {
                    return Err(HistoryError::NotFound(id));
                }
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO conversations (title, created_ms, updated_ms) VALUES (?1, ?2, ?2)",
                    params![title(question), now],
                )
                .map_err(err)?;
                tx.last_insert_rowid()
            }
        };
        for (role, content) in [("user", question), ("assistant", answer)] {
            tx.execute(
                "INSERT INTO messages (conversation_id, role, content, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![id, role, content, now],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Conversations, the one with the latest message first (by insertion, so exchanges saved
    /// within one millisecond still order right); with `query`, only those with a message
    /// containing it (case-insensitive for ASCII).
    pub fn list(&self, query: Option<&str>) -> Result<Vec<ConversationInfo>, HistoryError> {
        let pattern = query.filter(|q| !q.trim().is_empty()).map(|q| format!("%{}%", escape_like(q.trim())));
        let mut stmt = self
            .db
            .prepare(
                "SELECT id, title, created_ms, updated_ms FROM conversations c
                 WHERE ?1 IS NULL OR EXISTS (
                     SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.content LIKE ?1 ESCAPE '\\')
                 ORDER BY (SELECT MAX(m.id) FROM messages m WHERE m.conversation_id = c.id) DESC, id DESC",
            )
            .map_err(self.err())?;
        let rows = stmt.query_map(params![pattern], conversation_row).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// The messages of a conversation, oldest first.
    pub fn messages(&self, conversation: i64) -> Result<Vec<SavedMessage>, HistoryError> {
        self.info(conversation)?;
        self.message_rows(conversation)
    }

    /// The messages of a conversation known to exist.
    fn message_rows(&self, conversation: i64) -> Result<Vec<SavedMessage>, HistoryError> {
        let mut stmt = self
            .db
            .prepare("SELECT role, content, created_ms FROM messages WHERE conversation_id = ?1 ORDER BY id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([conversation], |r| Ok(SavedMessage { role: r.get(0)?, content: r.get(1)?, created_ms: r.get(2)? }))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// One conversation's listing.
    pub fn info(&self, conversation: i64) -> Result<ConversationInfo, HistoryError> {
        self.db
            .query_row(
                "SELECT id, title, created_ms, updated_ms FROM conversations WHERE id = ?1",
                [conversation],
                conversation_row,
            )
            .optional()
            .map_err(self.err())?
            .ok_or(HistoryError::NotFound(conversation))
    }

    /// Gives a conversation a title of the user's own (trimmed; an empty one is refused).
    pub fn rename(&mut self, conversation: i64, title: &str) -> Result<(), HistoryError> {
        let title = title.trim();
        if title.is_empty() {
            return Err(HistoryError::EmptyTitle);
        }
        match self
            .db
            .execute("UPDATE conversations SET title = ?1 WHERE id = ?2", params![title, conversation])
            .map_err(self.err())?
        {
            0 => Err(HistoryError::NotFound(conversation)),
            _ => Ok(()),
        }
    }

    /// A conversation written out in `format`, to keep or share.
    pub fn export(&self, conversation: i64, format: ExportFormat) -> Result<String, HistoryError> {
        let info = self.info(conversation)?;
        let messages = self.message_rows(conversation)?;
        Ok(match format {
            ExportFormat::Markdown => {
                let mut out = format!("# {}\n", info.title);
                for m in &messages {
                    let who = if m.role == "user" { "You" } else { "Murmur" };
                    out.push_str(&format!("\n## {who}\n\n{}\n", m.content.trim_end()));
                }
                out
            }
            ExportFormat::Json => {
                let v = serde_json::json!({ "conversation": info, "messages": messages });
                serde_json::to_string_pretty(&v).expect("history rows serialise") + "\n"
            }
        })
    }

    /// Deletes a conversation and its messages.
    pub fn delete(&mut self, conversation: i64) -> Result<(), HistoryError> {
        match self.db.execute("DELETE FROM conversations WHERE id = ?1", [conversation]).map_err(self.err())? {
            0 => Err(HistoryError::NotFound(conversation)),
            _ => Ok(()),
        }
    }
}

/// A conversation's listing from a row of `id, title, created_ms, updated_ms`.
fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationInfo> {
    Ok(ConversationInfo { id: r.get(0)?, title: r.get(1)?, created_ms: r.get(2)?, updated_ms: r.get(3)? })
}

/// The first line of `question`, cut to [`TITLE_CHARS`].
fn title(question: &str) -> String {
    let line = question.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(empty)");
    match line.char_indices().nth(TITLE_CHARS) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchanges_survive_reopening_and_are_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        let (first, second) = {
            let mut h = History::open(&path).unwrap();
            let first = h.save_exchange(None, "What is the capital of France?", "Paris.").unwrap();
            let second = h.save_exchange(None, "How many days are in a week?", "Seven.").unwrap();
            assert_eq!(h.save_exchange(Some(first), "And of Italy?", "Rome.").unwrap(), first);
            (first, second)
        };
        let h = History::open(&path).unwrap();
        let list = h.list(None).unwrap();
        assert_eq!(list.iter().map(|c| c.id).collect::<Vec<_>>(), [first, second], "continued conversation first");
        assert_eq!(list[0].title, "What is the capital of France?");
        let roles: Vec<(String, String)> = h.messages(first).unwrap().into_iter().map(|m| (m.role, m.content)).collect();
        assert_eq!(roles.len(), 4);
        assert_eq!(roles[3], ("assistant".to_string(), "Rome.".to_string()));
    }

    #[test]
    fn search_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        let a = h.save_exchange(None, "Tell me about ROME", "It is old.").unwrap();
        let b = h.save_exchange(None, "100% sure?", "Yes.").unwrap();
        assert_eq!(h.list(Some("rome")).unwrap().iter().map(|c| c.id).collect::<Vec<_>>(), [a]);
        assert_eq!(h.list(Some("100%")).unwrap().iter().map(|c| c.id).collect::<Vec<_>>(), [b]);
        assert!(h.list(Some("0_")).unwrap().is_empty(), "LIKE wildcards are literal");
        h.delete(a).unwrap();
        assert!(matches!(h.messages(a), Err(HistoryError::NotFound(_))));
        assert!(matches!(h.delete(a), Err(HistoryError::NotFound(_))));
        assert_eq!(h.list(None).unwrap().len(), 1);
    }

    #[test]
    fn a_file_from_a_newer_murmur_or_not_sqlite_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let newer = dir.path().join("newer.sqlite");
        Connection::open(&newer).unwrap().pragma_update(None, "user_version", 99).unwrap();
        let e = History::open(&newer).err().expect("refused").to_string();
        assert!(e.contains("schema version 99") && e.contains("update Murmur"), "{e}");
        let junk = dir.path().join("junk.sqlite");
        std::fs::write(&junk, vec![0x42; 8192]).unwrap();
        let e = History::open(&junk).err().expect("refused").to_string();
        assert!(e.contains("junk.sqlite"), "{e}");
        assert_eq!(std::fs::read(&junk).unwrap(), vec![0x42; 8192]);
    }

    #[test]
    fn a_renamed_conversation_keeps_its_title_and_exports_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        let id = h.save_exchange(None, "What is the capital of France?", "**Paris**.").unwrap();
        h.save_exchange(Some(id), "And of Italy?", "Rome.").unwrap();
        h.rename(id, "  Capitals  ").unwrap();
        assert!(matches!(h.rename(id, " "), Err(HistoryError::EmptyTitle)));
        assert!(matches!(h.rename(id + 1, "x"), Err(HistoryError::NotFound(_))));
        assert_eq!(h.list(None).unwrap()[0].title, "Capitals");
        let md = h.export(id, ExportFormat::Markdown).unwrap();
        assert_eq!(
            md,
            "# Capitals\n\n## You\n\nWhat is the capital of France?\n\n## Murmur\n\n**Paris**.\n\n## You\n\nAnd of Italy?\n\n## Murmur\n\nRome.\n"
        );
        let json: serde_json::Value = serde_json::from_str(&h.export(id, ExportFormat::Json).unwrap()).unwrap();
        assert_eq!(json["conversation"]["title"], "Capitals");
        let contents: Vec<&str> = json["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["What is the capital of France?", "**Paris**.", "And of Italy?", "Rome."]);
        assert!(matches!(h.export(id + 1, ExportFormat::Json), Err(HistoryError::NotFound(_))));
    }

    #[test]
    fn titles_are_the_first_line_cut_short() {
        assert_eq!(title("\n  hello\nworld"), "hello");
        assert_eq!(title(&"x".repeat(80)), format!("{}…", "x".repeat(60)));
    }
}
