//! `dify`: a Dify app's `chat-messages` API in streaming mode.
//!
//! Dify keeps the conversation itself: the request carries only the latest question
//! (`query`), the real user id (`user`), and the `conversation_id` Dify returned for
//! this session earlier (kept with the session). The app's own prompt applies;
//! `LLM_SYSTEM_PROMPT` is not sent. Events carry their type inside the JSON `event`
//! field: `message`/`agent_message` (answer text), `message_end` (usage, the end),
//! `error` (a failure); the rest (`ping`, workflow and node events, …) are ignored.

use async_trait::async_trait;
use chatbox_application::ports::{AnswerStream, ChatRequest, LlmProvider, ProviderError, Role, StreamEvent};
use chatbox_domain::{FinishReason, Usage};
use http::header::{self, HeaderMap};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::config::ProviderConfig;
use crate::redact::redact;
use crate::sse::SseEvent;
use crate::transport::{EventDecoder, Transport, classify_status, parse_typed, secret_header};

/// The `dify` provider.
#[derive(Debug, Clone)]
pub struct DifyProvider {
    transport: Transport,
    config: ProviderConfig,
}

#[derive(Serialize)]
struct ChatMessagesRequest<'a> {
    inputs: serde_json::Map<String, serde_json::Value>,
    query: &'a str,
    response_mode: &'static str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<&'a str>,
}

impl DifyProvider {
    /// A provider for `config`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: ProviderConfig) -> Result<Self, crate::client::ClientError> {
        Ok(Self { transport: Transport::new("dify", config.api_key.clone())?, config })
    }

    /// The JSON body for `request`.
    ///
    /// # Errors
    /// When the body cannot be serialised.
    pub fn body(request: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        let query =
            request.history.iter().rev().find(|t| t.role == Role::User).map_or("", |t| t.content.as_str());
        let body = ChatMessagesRequest {
            inputs: serde_json::Map::new(),
            query,
            response_mode: "streaming",
            user: request.user_id.as_str(),
            conversation_id: request.conversation_id.as_deref(),
        };
        serde_json::to_vec(&body)
            .map_err(|e| ProviderError::Stream(format!("cannot encode the request: {e}")))
    }
}

#[async_trait]
impl LlmProvider for DifyProvider {
    async fn stream(&self, request: &ChatRequest) -> Result<AnswerStream, ProviderError> {
        let body = Self::body(request)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.config.api_key {
            headers.insert(header::AUTHORIZATION, secret_header(&format!("Bearer {}", key.expose()))?);
        }
        let decoder = ChatMessagesDecoder { known_conversation: request.conversation_id.clone() };
        self.transport.stream(&self.config.url("chat-messages"), headers, body, decoder).await
    }
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    event: String,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    usage: Option<UsageDto>,
}

#[derive(Debug, Deserialize)]
struct UsageDto {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Decodes `chat-messages` events.
#[derive(Debug, Default)]
pub struct ChatMessagesDecoder {
    known_conversation: Option<String>,
}

impl EventDecoder for ChatMessagesDecoder {
    fn decode(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let Some(parsed) = parse_typed::<Event>(&event, "event") else {
            // The event name is the provider's text: credential shapes are redacted.
            let name = event.event.as_deref().map(|name| redact(name, None));
            debug!(event = ?name, "skipping a malformed Dify event");
            return Ok(());
        };
        if let Some(id) = parsed.conversation_id.filter(|id| !id.is_empty())
            && self.known_conversation.as_deref() != Some(id.as_str())
        {
            self.known_conversation = Some(id.clone());
            out.push(StreamEvent::Conversation(id));
        }
        match parsed.event.as_str() {
            "message" | "agent_message" => {
                if let Some(answer) = parsed.answer.filter(|a| !a.is_empty()) {
                    out.push(StreamEvent::Delta(answer));
                }
            }
            "message_end" => {
                if let Some(usage) = parsed.metadata.and_then(|m| m.usage) {
                    out.push(StreamEvent::Usage(Usage {
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                        estimated: false,
                    }));
                }
                out.push(StreamEvent::Finished(FinishReason::Stop));
            }
            "error" => {
                return Err(match parsed.status {
                    Some(status) if status >= 400 => classify_status(status, None),
                    _ => ProviderError::Stream(format!("error event ({})", parsed.code.unwrap_or_default())),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        Err(ProviderError::Stream("the stream ended before message_end".into()))
    }
}
