//! The chat section: how long sessions, answers and share links live, how much of a
//! conversation goes to the model, and the size limits of messages and answers; and
//! its conversion, with the limits and the providers, into the use-cases'
//! [`ChatSettings`].
//!
//! Fields are named after their variables: the range rules (`#[validate]`) report under
//! the field's name in upper case.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chatbox_application::ChatSettings;
use chatbox_application::settings::RetryPolicy;
use chatbox_domain::rate_limit::Quota;
use validator::Validate;

use super::limits::LimitsSection;
use super::providers::ProvidersSection;
use super::reader::Reader;

/// The longest one storage call may take before it counts as failed.
const STORAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Help alerts per session (and per [`HELP_ALERT_WINDOW`]); more are skipped and logged.
const HELP_ALERTS_PER_SESSION: u32 = 5;
/// The window of [`HELP_ALERTS_PER_SESSION`].
const HELP_ALERT_WINDOW: Duration = Duration::from_secs(300);
/// Help alerts per user over all their sessions (and per [`HELP_ALERT_USER_WINDOW`]).
const HELP_ALERTS_PER_USER: u32 = 10;
/// The window of [`HELP_ALERTS_PER_USER`].
const HELP_ALERT_USER_WINDOW: Duration = Duration::from_secs(3600);
/// Stored messages per page of a replay.
const REPLAY_PAGE_SIZE: usize = 200;

/// `SESSION_*`, `RECONNECT_TIMEOUT`, `SHARE_TTL`, `LLM_*` (but the provider blocks),
/// `MAX_CONTENT_CHARS`, `MAX_ANSWER_CHARS`, `ANSWER_QUEUE_LIMIT`.
#[derive(Debug, Clone, Validate)]
pub struct ChatSection {
    /// `SESSION_TTL`.
    pub session_ttl: Duration,
    /// `SESSION_CLEANUP_INTERVAL`; never longer than `SESSION_TTL`.
    pub session_cleanup_interval: Duration,
    /// `RECONNECT_TIMEOUT`.
    pub reconnect_timeout: Duration,
    /// `SHARE_TTL`.
    pub share_ttl: Duration,
    /// `MAX_CONTENT_CHARS`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub max_content_chars: usize,
    /// `MAX_ANSWER_CHARS` (extension): the longest answer, in characters.
    #[validate(range(min = 100, max = 10_000_000, message = "must be between 100 and 10000000"))]
    pub max_answer_chars: usize,
    /// `ANSWER_QUEUE_LIMIT` (extension): answers that may wait per session.
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    pub answer_queue_limit: usize,
    /// `LLM_STREAM_TIMEOUT`.
    pub llm_stream_timeout: Duration,
    /// `LLM_IDLE_TIMEOUT`.
    pub llm_idle_timeout: Duration,
    /// `LLM_CONTEXT_MESSAGES`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub llm_context_messages: usize,
    /// `LLM_CONTEXT_MAX_CHARS`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub llm_context_max_chars: usize,
    /// `LLM_SYSTEM_PROMPT`.
    pub llm_system_prompt: Option<String>,
    /// `LLM_MAX_RETRIES`.
    #[validate(range(max = 10, message = "must be at most 10"))]
    pub llm_max_retries: u32,
}

impl ChatSection {
    /// Reads the section.
    pub(super) fn read(r: &mut Reader<'_>) -> Self {
        let session_ttl = r.duration("SESSION_TTL", "15m");
        let session_cleanup_interval = r.duration("SESSION_CLEANUP_INTERVAL", "5m");
        if session_cleanup_interval > session_ttl {
            r.fail("SESSION_CLEANUP_INTERVAL", "must not be longer than SESSION_TTL");
        }
        let section = Self {
            session_ttl,
            session_cleanup_interval,
            reconnect_timeout: r.duration("RECONNECT_TIMEOUT", "15m"),
            share_ttl: r.duration("SHARE_TTL", "7d"),
            max_content_chars: r.number("MAX_CONTENT_CHARS", 10_000),
            max_answer_chars: r.number("MAX_ANSWER_CHARS", 100_000),
            answer_queue_limit: r.number("ANSWER_QUEUE_LIMIT", 3),
            llm_stream_timeout: r.duration("LLM_STREAM_TIMEOUT", "120s"),
            llm_idle_timeout: r.duration("LLM_IDLE_TIMEOUT", "30s"),
            llm_context_messages: r.number("LLM_CONTEXT_MESSAGES", 20),
            llm_context_max_chars: r.number("LLM_CONTEXT_MAX_CHARS", 24_000),
            llm_system_prompt: r.text("LLM_SYSTEM_PROMPT"),
            llm_max_retries: r.number("LLM_MAX_RETRIES", 2),
        };
        r.check_ranges(&section);
        section
    }

    /// The use-cases' settings: this section, with the quotas and session cap of
    /// `limits`, the models of `providers`, and the alerts' `admin_panel_url`.
    ///
    /// # Errors
    /// When a quota is zero (validation refuses that first).
    pub fn chat_settings(
        &self,
        limits: &LimitsSection,
        providers: &ProvidersSection,
        admin_panel_url: Option<String>,
    ) -> anyhow::Result<ChatSettings> {
        Ok(ChatSettings {
            models: Arc::from(providers.models()),
            max_content_chars: self.max_content_chars,
            message_quota: limits.message_quota()?,
            command_quota: limits.command_quota()?,
            answer_queue_limit: self.answer_queue_limit,
            stream_timeout: self.llm_stream_timeout,
            idle_timeout: self.llm_idle_timeout,
            context_messages: self.llm_context_messages,
            context_max_chars: self.llm_context_max_chars,
            system_prompt: self.llm_system_prompt.clone(),
            session_ttl: self.session_ttl,
            reconnect_timeout: self.reconnect_timeout,
            max_answer_chars: self.max_answer_chars,
            replay_page_size: REPLAY_PAGE_SIZE,
            retry: RetryPolicy {
                max_retries: self.llm_max_retries,
                base_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(5),
            },
            fallbacks: providers.fallbacks(),
            storage_timeout: STORAGE_TIMEOUT,
            max_active_sessions_per_user: limits.max_active_sessions_per_user,
            share_ttl: self.share_ttl,
            help_alert_quota: Quota::new(HELP_ALERTS_PER_SESSION, HELP_ALERT_WINDOW)
                .context("the help alert quota")?,
            help_alert_user_quota: Quota::new(HELP_ALERTS_PER_USER, HELP_ALERT_USER_WINDOW)
                .context("the per-user help alert quota")?,
            admin_panel_url,
        })
    }
}
