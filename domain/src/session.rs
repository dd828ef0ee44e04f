//! The session: one conversation of one user, with its name, model, status, handoff
//! state and counters.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Timestamp;
use crate::answer::Usage;
use crate::handoff::HandoffState;
use crate::ids::{ModelId, SessionId, UserId};
use crate::message::Seq;
use crate::naming;

/// How many answer durations a session keeps for its average and maximum.
pub const RESPONSE_TIME_WINDOW: usize = 100;

/// Whether a session still takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Takes messages.
    Active,
    /// Ended at the given time; takes no new messages.
    Ended {
        /// When it ended.
        at: Timestamp,
    },
}

/// A provider's own id for this conversation (Dify keeps the history server-side and
/// needs its `conversation_id` back on every request). It belongs to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConversation {
    /// The model (provider) that issued it.
    pub model_id: ModelId,
    /// The provider's conversation id.
    pub id: String,
}

/// A conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The user it belongs to.
    pub owner: UserId,
    /// Derived from the first user message; `None` until then.
    pub name: Option<String>,
    /// The model that answers it.
    pub model_id: ModelId,
    /// Active or ended.
    pub status: SessionStatus,
    /// Who answers.
    pub handoff: HandoffState,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last stored a message or changed.
    pub last_activity: Timestamp,
    /// Stored messages.
    pub message_count: u64,
    /// The sequence number of the last stored message.
    pub last_seq: Seq,
    /// Tokens of all answers.
    pub total_tokens: u64,
    /// The durations of the most recent answers (at most [`RESPONSE_TIME_WINDOW`]).
    pub response_times: ResponseTimes,
    /// The provider's conversation id, for providers that keep state.
    pub provider_conversation: Option<ProviderConversation>,
}

impl Session {
    /// A fresh, unnamed, active session.
    #[must_use]
    pub fn new(id: SessionId, owner: UserId, model_id: ModelId, now: Timestamp) -> Self {
        Self {
            id,
            owner,
            name: None,
            model_id,
            status: SessionStatus::Active,
            handoff: HandoffState::Ai,
            created_at: now,
            last_activity: now,
            message_count: 0,
            last_seq: Seq::default(),
            total_tokens: 0,
            response_times: ResponseTimes::default(),
            provider_conversation: None,
        }
    }

    /// The provider conversation id to send to `model_id`, if it issued one.
    #[must_use]
    pub fn conversation_for(&self, model_id: &ModelId) -> Option<&str> {
        self.provider_conversation.as_ref().filter(|c| &c.model_id == model_id).map(|c| c.id.as_str())
    }

    /// True while it takes messages.
    #[must_use]
    pub const fn is_active(&self) -> bool {
        matches!(self.status, SessionStatus::Active)
    }

    /// When it ended, if it did.
    #[must_use]
    pub const fn ended_at(&self) -> Option<Timestamp> {
        match self.status {
            SessionStatus::Active => None,
            SessionStatus::Ended { at } => Some(at),
        }
    }

    /// True if `user` owns it.
    #[must_use]
    pub fn is_owned_by(&self, user: &UserId) -> bool {
        &self.owner == user
    }

    /// The display name ("New Chat" until the first user message).
    #[must_use]
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(naming::DEFAULT_NAME)
    }

    /// The sequence number the next stored message gets.
    #[must_use]
    pub const fn next_seq(&self) -> Seq {
        self.last_seq.next()
    }

    /// Accounts for a stored message: its sequence number, its time, and its effects.
    /// Applying the same message twice changes nothing the second time (a retried write
    /// must not count twice), and numbers that come from outside (token counts) saturate.
    pub fn record(&mut self, seq: Seq, at: Timestamp, effects: &MessageEffects) {
        if seq <= self.last_seq {
            return;
        }
        if self.name.is_none() {
            self.name.clone_from(&effects.name);
        }
        self.last_seq = seq;
        self.message_count = self.message_count.saturating_add(1);
        self.last_activity = self.last_activity.max(at);
        self.total_tokens = self.total_tokens.saturating_add(effects.tokens);
        if let Some(duration) = effects.response_time {
            self.response_times.push(duration);
        }
        if let Some(conversation) = &effects.provider_conversation {
            self.provider_conversation = Some(conversation.clone());
        }
    }

    /// The effects of storing a message written by the user: the first one names the
    /// session.
    #[must_use]
    pub fn user_message_effects(&self, user_text: Option<&str>) -> MessageEffects {
        MessageEffects {
            name: self.name.is_none().then_some(user_text).flatten().map(naming::session_name),
            ..MessageEffects::default()
        }
    }

    /// Ends the session. Ending an ended session keeps its first end time.
    pub fn end(&mut self, now: Timestamp) {
        if self.is_active() {
            self.status = SessionStatus::Ended { at: now };
            self.last_activity = now;
        }
    }
}

/// What storing one message changes on its session, besides counting it: the fields a
/// store updates in the same write as the message, each by its own field-level change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageEffects {
    /// The session's name, applied only while it has none (the first user message).
    pub name: Option<String>,
    /// Tokens the message (an answer) cost, added to the session's total.
    pub tokens: u64,
    /// How long the answer took, added to the response-time window.
    pub response_time: Option<Duration>,
    /// The provider's conversation id after this answer, replacing the previous one.
    pub provider_conversation: Option<ProviderConversation>,
}

impl MessageEffects {
    /// The effects of a finished answer.
    #[must_use]
    pub fn answer(usage: Usage, duration: Duration, conversation: Option<ProviderConversation>) -> Self {
        Self {
            name: None,
            tokens: usage.total_tokens(),
            response_time: Some(duration),
            provider_conversation: conversation,
        }
    }
}

/// A bounded window of answer durations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseTimes {
    recent: VecDeque<Duration>,
}

impl ResponseTimes {
    /// Adds one, forgetting the oldest beyond [`RESPONSE_TIME_WINDOW`].
    pub fn push(&mut self, duration: Duration) {
        if self.recent.len() == RESPONSE_TIME_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(duration);
    }

    /// The kept durations, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Duration> + '_ {
        self.recent.iter().copied()
    }

    /// How many are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// True when none is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// The mean of the kept durations.
    #[must_use]
    pub fn average(&self) -> Option<Duration> {
        let count = u32::try_from(self.recent.len()).ok().filter(|&n| n > 0)?;
        Some(self.recent.iter().sum::<Duration>() / count)
    }

    /// The longest kept duration.
    #[must_use]
    pub fn max(&self) -> Option<Duration> {
        self.recent.iter().max().copied()
    }
}

impl FromIterator<Duration> for ResponseTimes {
    fn from_iter<I: IntoIterator<Item = Duration>>(iter: I) -> Self {
        let mut times = Self::default();
        for duration in iter {
            times.push(duration);
        }
        times
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        Session::new(
            SessionId::parse("s1").expect("id"),
            UserId::parse("u1").expect("id"),
            ModelId::parse("demo").expect("id"),
            now,
        )
    }

    #[test]
    fn first_user_message_names_the_session_and_seq_increases() {
        let mut s = session();
        let now = s.created_at;
        assert_eq!(s.display_name(), "New Chat");
        for text in [Some("Hello world"), None, Some("Another")] {
            let effects = s.user_message_effects(text);
            let seq = s.next_seq();
            s.record(seq, now, &effects);
        }
        assert_eq!(s.name.as_deref(), Some("Hello world"));
        assert_eq!((s.message_count, s.last_seq), (3, Seq(3)));
    }

    #[test]
    fn recording_the_same_message_twice_counts_it_once_and_tokens_saturate() {
        let mut s = session();
        let now = s.created_at;
        let effects = MessageEffects {
            tokens: u64::MAX,
            ..MessageEffects::answer(Usage::default(), Duration::from_millis(5), None)
        };
        s.record(Seq(1), now, &effects);
        s.record(Seq(1), now, &effects);
        assert_eq!((s.message_count, s.total_tokens, s.response_times.len()), (1, u64::MAX, 1));
        s.record(Seq(2), now, &effects);
        assert_eq!(s.total_tokens, u64::MAX, "saturates instead of overflowing");
    }

    #[test]
    fn ending_twice_keeps_the_first_end_time() {
        let mut s = session();
        let first = s.created_at + chrono::Duration::seconds(5);
        s.end(first);
        s.end(first + chrono::Duration::seconds(5));
        assert_eq!(s.ended_at(), Some(first));
        assert!(!s.is_active());
    }

    #[test]
    fn response_time_window_is_bounded() {
        let mut s = session();
        for ms in 1..=250u64 {
            let seq = s.next_seq();
            s.record(
                seq,
                s.created_at,
                &MessageEffects::answer(Usage::default(), Duration::from_millis(ms), None),
            );
        }
        assert_eq!(s.response_times.len(), RESPONSE_TIME_WINDOW);
        assert_eq!(s.response_times.max(), Some(Duration::from_millis(250)));
        assert_eq!(s.response_times.iter().next(), Some(Duration::from_millis(151)));
    }

    fn model(id: &str) -> ModelId {
        ModelId::parse(id).expect("id")
    }

    #[test]
    fn a_provider_conversation_is_sent_only_to_the_model_that_issued_it() {
        let mut s = session();
        assert_eq!(s.conversation_for(&model("demo")), None);
        s.provider_conversation = Some(ProviderConversation { model_id: model("demo"), id: "conv-1".into() });
        assert_eq!(s.conversation_for(&model("demo")), Some("conv-1"));
        assert_eq!(s.conversation_for(&model("other")), None);
    }

    #[test]
    fn a_session_is_owned_by_its_owner_only() {
        let s = session();
        assert!(s.is_owned_by(&UserId::parse("u1").expect("id")));
        assert!(!s.is_owned_by(&UserId::parse("u2").expect("id")));
    }

    #[test]
    fn response_times_average_is_the_mean_and_none_when_empty() {
        let empty = ResponseTimes::default();
        assert!(empty.is_empty());
        assert_eq!(empty.average(), None);
        assert_eq!(empty.max(), None);
        let times: ResponseTimes = [10, 20, 60].into_iter().map(Duration::from_millis).collect();
        assert!(!times.is_empty());
        assert_eq!(times.len(), 3);
        assert_eq!(times.average(), Some(Duration::from_millis(30)));
        assert_eq!(times.max(), Some(Duration::from_millis(60)));
        let one: ResponseTimes = std::iter::once(Duration::from_millis(8)).collect();
        assert_eq!(one.average(), Some(Duration::from_millis(8)));
    }

    proptest::proptest! {
        #[test]
        fn the_average_of_equal_durations_is_that_duration(ms in 0u64..100_000, count in 1usize..=250) {
            let times: ResponseTimes = std::iter::repeat_n(Duration::from_millis(ms), count).collect();
            proptest::prop_assert_eq!(times.len(), count.min(RESPONSE_TIME_WINDOW));
            proptest::prop_assert_eq!(times.average(), Some(Duration::from_millis(ms)));
        }
    }
}
