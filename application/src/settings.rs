//! The knobs the use-cases obey, already validated by `infrastructure`.

use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::ModelId;
use chatbox_domain::rate_limit::Quota;

/// A model as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The id clients select.
    pub id: ModelId,
    /// The display name.
    pub name: String,
}

/// Settings of the chat use-cases.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Models in configuration order; the first is the default. Never empty.
    pub models: Arc<[ModelInfo]>,
    /// `MAX_CONTENT_CHARS`.
    pub max_content_chars: usize,
    /// `RATE_LIMIT` per `RATE_WINDOW`, per user.
    pub message_quota: Quota,
    /// Answers that may wait behind the one streaming, per session.
    pub answer_queue_limit: usize,
    /// `LLM_STREAM_TIMEOUT`: the longest a whole answer may take.
    pub stream_timeout: Duration,
    /// `LLM_IDLE_TIMEOUT`: the longest silence between two chunks.
    pub idle_timeout: Duration,
    /// `LLM_CONTEXT_MESSAGES`.
    pub context_messages: usize,
    /// `LLM_CONTEXT_MAX_CHARS`.
    pub context_max_chars: usize,
    /// `LLM_SYSTEM_PROMPT`.
    pub system_prompt: Option<String>,
    /// `SESSION_TTL`: idle live state older than this is evicted from memory.
    pub session_ttl: Duration,
    /// `RECONNECT_TIMEOUT`: how long an answer keeps running with no socket to see it.
    pub reconnect_timeout: Duration,
    /// Frames a socket may have queued before it counts as a slow consumer.
    pub socket_queue_capacity: usize,
    /// The most stored messages one resume replays.
    pub replay_limit: usize,
}

impl ChatSettings {
    /// The default model: the first configured.
    #[must_use]
    pub fn default_model(&self) -> &ModelId {
        &self.models[0].id
    }

    /// True if `id` is a configured model.
    #[must_use]
    pub fn knows_model(&self, id: &ModelId) -> bool {
        self.models.iter().any(|m| &m.id == id)
    }
}
