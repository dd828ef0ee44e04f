//! How an answer ended and what it cost.

use std::fmt;
use std::time::Duration;

/// Why an answer stream ended. Every answer that starts ends with exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The model hit its token limit.
    Length,
    /// The user (or shutdown, or a takeover) stopped the answer.
    Cancelled,
    /// The provider was silent too long, or the whole answer took too long.
    Timeout,
    /// The provider failed.
    Error,
}

impl FinishReason {
    /// The wire spelling (`metadata.finish_reason`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }

    /// Parses the wire spelling back.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Stop, Self::Length, Self::Cancelled, Self::Timeout, Self::Error]
            .into_iter()
            .find(|reason| reason.as_str() == value)
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Tokens of the prompt (history and system prompt included).
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
    /// True when the provider did not report counts and these are estimates.
    pub estimated: bool,
}

impl Usage {
    /// Prompt plus completion.
    #[must_use]
    pub const fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// A rough count for text whose provider reported none: one token per four
    /// characters, rounded up, the common rule of thumb for English text.
    #[must_use]
    pub fn estimate_tokens(text: &str) -> u64 {
        (text.chars().count() as u64).div_ceil(4)
    }
}

/// How long an answer took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnswerTiming {
    /// From the request to the first token, if one came.
    pub first_token: Option<Duration>,
    /// From the request to the end of the answer.
    pub total: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_round_trip_their_wire_names() {
        for reason in [
            FinishReason::Stop,
            FinishReason::Length,
            FinishReason::Cancelled,
            FinishReason::Timeout,
            FinishReason::Error,
        ] {
            assert_eq!(FinishReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(FinishReason::parse("other"), None);
    }

    #[test]
    fn token_estimate_counts_characters_not_bytes() {
        assert_eq!(Usage::estimate_tokens(""), 0);
        assert_eq!(Usage::estimate_tokens("abcde"), 2);
        assert_eq!(Usage::estimate_tokens("ééééé"), 2);
    }

    #[test]
    fn a_finish_reason_displays_as_its_wire_name() {
        assert_eq!(FinishReason::Stop.to_string(), "stop");
        assert_eq!(FinishReason::Length.to_string(), "length");
        assert_eq!(FinishReason::Cancelled.to_string(), "cancelled");
        assert_eq!(FinishReason::Timeout.to_string(), "timeout");
        assert_eq!(FinishReason::Error.to_string(), "error");
    }

    #[test]
    fn total_tokens_is_prompt_plus_completion() {
        let usage = Usage { prompt_tokens: 7, completion_tokens: 4, estimated: false };
        assert_eq!(usage.total_tokens(), 11);
        assert_eq!(Usage::default().total_tokens(), 0);
    }
}
