//! The knobs the use-cases obey, already validated by `infrastructure`.

use std::collections::HashMap;
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

/// How failed provider requests are retried: only before the first token, only for
/// failures whose kind says a retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `LLM_MAX_RETRIES`: attempts after the first, per provider.
    pub max_retries: u32,
    /// The first backoff; doubled per retry.
    pub base_delay: Duration,
    /// The longest backoff (a provider's `Retry-After` may ask for more).
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): exponential, capped, with
    /// "equal jitter" (half fixed, half random) so clients do not retry in lockstep. A
    /// provider's `Retry-After` is honoured as the minimum.
    #[must_use]
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit_random: f64) -> Duration {
        let exponential = self.base_delay.saturating_mul(2u32.saturating_pow(retry)).min(self.max_delay);
        let jittered = exponential.mul_f64(0.5 + 0.5 * unit_random.clamp(0.0, 1.0));
        retry_after.map_or(jittered, |asked| asked.max(jittered))
    }
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
    /// `WS_COMMAND_BUDGET` units per minute, per connection (see
    /// `chatbox_domain::command_budget`).
    pub command_quota: Quota,
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
    /// `MAX_ANSWER_CHARS`: an answer is cut (finish reason `length`) when it reaches this
    /// many characters, so one answer's memory is bounded.
    pub max_answer_chars: usize,
    /// Stored messages read (and queued to the socket as one batch) per page of a replay.
    pub replay_page_size: usize,
    /// Retries before the first token.
    pub retry: RetryPolicy,
    /// `LLM_PROVIDER_<N>_FALLBACK`: the provider to try when one fails before its first
    /// token.
    pub fallbacks: HashMap<ModelId, ModelId>,
    /// The longest one storage call may take before it counts as failed.
    pub storage_timeout: Duration,
    /// `MAX_ACTIVE_SESSIONS_PER_USER`: creating one more ends the least recently active.
    pub max_active_sessions_per_user: usize,
    /// `SHARE_TTL`: how long a share link works.
    pub share_ttl: Duration,
    /// Help alerts per session (5 per 5 minutes by default); more are skipped and logged.
    pub help_alert_quota: Quota,
    /// Help alerts per user, over all their sessions: asking for help in one session
    /// after another cannot multiply the alerts.
    pub help_alert_user_quota: Quota,
    /// `ADMIN_PANEL_URL`: alerts link to the session there.
    pub admin_panel_url: Option<String>,
}

impl ChatSettings {
    /// The default model: the first configured.
    #[must_use]
    pub fn default_model(&self) -> &ModelId {
        &self.models[0].id
    }

    /// The providers to try for `model`: itself, then its fallback, then the fallback's
    /// fallback, without repeats.
    #[must_use]
    pub fn provider_chain(&self, model: &ModelId) -> Vec<ModelId> {
        let mut chain = vec![model.clone()];
        let mut next = self.fallbacks.get(model);
        while let Some(fallback) = next.filter(|f| !chain.contains(f)) {
            chain.push(fallback.clone());
            next = self.fallbacks.get(fallback);
        }
        chain
    }

    /// True if `id` is a configured model.
    #[must_use]
    pub fn knows_model(&self, id: &ModelId) -> bool {
        self.models.iter().any(|m| &m.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_jittered_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(policy.delay(0, None, 1.0), Duration::from_millis(100));
        assert_eq!(policy.delay(0, None, 0.0), Duration::from_millis(50));
        assert_eq!(policy.delay(2, None, 1.0), Duration::from_millis(400));
        assert_eq!(policy.delay(10, None, 1.0), Duration::from_secs(1));
        assert_eq!(policy.delay(0, Some(Duration::from_secs(3)), 0.5), Duration::from_secs(3));
    }
}
