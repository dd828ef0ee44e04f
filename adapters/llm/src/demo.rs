//! The `demo` provider: no network, a deterministic answer that quotes the question,
//! streamed word by word with a configurable delay. It behaves like a real provider in
//! the ways the gateway cares about: the answer arrives over time (so `stop`, timeouts
//! and resume can be tried), dropping the stream stops it at once, and it reports usage
//! at the end.

use std::time::Duration;

use async_trait::async_trait;
use chatbox_application::ports::{AnswerStream, ChatRequest, LlmProvider, ProviderError, Role, StreamEvent};
use chatbox_domain::{FinishReason, Usage};
use futures::StreamExt;
use futures::stream;

/// The longest part of the question quoted back, in characters.
const QUOTE_CHARS: usize = 200;

/// The demo provider.
#[derive(Debug, Clone)]
pub struct DemoProvider {
    delay: Duration,
}

impl DemoProvider {
    /// A provider pausing `delay` before each word.
    #[must_use]
    pub const fn new(delay: Duration) -> Self {
        Self { delay }
    }

    /// The full answer to `request`, as one text.
    #[must_use]
    pub fn answer_text(request: &ChatRequest) -> String {
        let question = request
            .history
            .iter()
            .rev()
            .find(|turn| turn.role == Role::User)
            .map_or("", |turn| turn.content.as_str());
        let quoted: String = question.split_whitespace().collect::<Vec<_>>().join(" ");
        let quoted = match quoted.char_indices().nth(QUOTE_CHARS) {
            Some((cut, _)) => format!("{}...", &quoted[..cut]),
            None => quoted,
        };
        let earlier = request.history.len().saturating_sub(1);
        format!(
            "You said: \"{quoted}\". This is the demo model of Chatbox, answering word by word so \
             you can watch the stream arrive. It has read {earlier} earlier messages of this \
             conversation. Configure a real provider to get real answers."
        )
    }
}

#[async_trait]
impl LlmProvider for DemoProvider {
    async fn stream(&self, request: &ChatRequest) -> Result<AnswerStream, ProviderError> {
        let answer = Self::answer_text(request);
        let prompt_chars: usize = request.history.iter().map(|t| t.content.chars().count()).sum::<usize>()
            + request.system_prompt.as_ref().map_or(0, |p| p.chars().count());
        // Words keep their trailing space so the deltas concatenate to the answer.
        let words: Vec<String> = answer.split_inclusive(' ').map(str::to_owned).collect();
        let usage = Usage {
            prompt_tokens: (prompt_chars as u64).div_ceil(4),
            completion_tokens: words.len() as u64,
            estimated: false,
        };
        let delay = self.delay;
        let deltas = stream::iter(words).then(move |word| async move {
            // A zero delay must not cost a timer tick per word.
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(StreamEvent::Delta(word))
        });
        let ending =
            stream::iter([Ok(StreamEvent::Usage(usage)), Ok(StreamEvent::Finished(FinishReason::Stop))]);
        Ok(deltas.chain(ending).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatbox_application::ports::ChatTurn;
    use chatbox_domain::{ModelId, SessionId, UserId};

    fn request(question: &str) -> ChatRequest {
        ChatRequest {
            model_id: ModelId::parse("demo").expect("id"),
            system_prompt: None,
            history: vec![
                ChatTurn::text(Role::User, "earlier"),
                ChatTurn::text(Role::Assistant, "reply"),
                ChatTurn::text(Role::User, question),
            ],
            user_id: UserId::parse("u").expect("id"),
            session_id: SessionId::parse("s").expect("id"),
            conversation_id: None,
        }
    }

    #[tokio::test]
    async fn streams_the_answer_word_by_word_then_usage_and_stop() {
        let provider = DemoProvider::new(Duration::ZERO);
        let events: Vec<StreamEvent> = provider
            .stream(&request("What is Rust?"))
            .await
            .expect("stream")
            .map(|event| event.expect("no error"))
            .collect()
            .await;
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta(d) => Some(d.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, DemoProvider::answer_text(&request("What is Rust?")));
        assert!(text.contains("\"What is Rust?\""));
        assert!(text.contains("read 2 earlier messages"));
        assert!(events.len() > 10, "streamed in many pieces");
        assert_eq!(events.last(), Some(&StreamEvent::Finished(FinishReason::Stop)));
        assert!(matches!(events[events.len() - 2], StreamEvent::Usage(u) if u.completion_tokens > 10));
    }

    #[test]
    fn long_questions_are_quoted_in_part_without_splitting_characters() {
        let text = DemoProvider::answer_text(&request(&"日本".repeat(300)));
        assert!(text.contains("...\""));
    }
}
