//! `anthropic`: the Messages API over server-sent events.
//!
//! Request: `POST {endpoint}/messages` with `x-api-key`, `anthropic-version`, the system
//! prompt as the top-level `system` field (not a message), and `stream: true`.
//! Stream: `message_start` (input tokens), `content_block_delta` with `text_delta`
//! (the answer), `message_delta` (stop reason, output tokens), `message_stop` (the end);
//! `ping` and unknown events are ignored; an `error` event (e.g. `overloaded_error`) is
//! a failure, never a normal end, and so is a stream that stops before `message_stop`.
//!
//! A user turn with pictures, for a model configured with `_VISION`, sends `content` as
//! an array of blocks: one base64 `image` block per picture, in order, then the `text`
//! block (left out when empty), the order Anthropic recommends. Every other turn sends
//! `content` as a plain string.

use async_trait::async_trait;
use chatbox_application::ports::{
    AnswerStream, ChatRequest, ChatTurn, LlmProvider, ProviderError, Role, StreamEvent,
};
use chatbox_domain::{FinishReason, Usage};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::config::ProviderConfig;
use crate::images::Base64;
use crate::redact::redact;
use crate::sse::SseEvent;
use crate::transport::{EventDecoder, Transport, parse_typed, secret_header};

/// The API version this adapter speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the Messages API; this is used when none is configured.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The `anthropic` provider.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    transport: Transport,
    config: ProviderConfig,
}

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: Vec<Message<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Content<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Image { source: ImageSource<'a> },
    Text { text: &'a str },
}

#[derive(Serialize)]
struct ImageSource<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    media_type: &'static str,
    data: Base64<'a>,
}

impl AnthropicProvider {
    /// A provider for `config`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: ProviderConfig) -> Result<Self, crate::client::ClientError> {
        Ok(Self { transport: Transport::new("anthropic", config.api_key.clone())?, config })
    }

    /// The JSON body for `request`.
    ///
    /// # Errors
    /// When the body cannot be serialised.
    pub fn body(&self, request: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        // The conversation must open with a user turn; consecutive turns of one role
        // are merged by the API itself.
        let messages = request
            .history
            .iter()
            .skip_while(|turn| turn.role == Role::Assistant)
            .map(|turn| match turn.role {
                Role::User => Message { role: "user", content: self.user_content(turn) },
                Role::Assistant => Message { role: "assistant", content: Content::Text(&turn.content) },
            })
            .collect();
        let body = MessagesRequest {
            model: self.config.model.as_deref().unwrap_or_default(),
            max_tokens: self.config.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            system: request.system_prompt.as_deref(),
            messages,
            stream: true,
            temperature: self.config.temperature,
        };
        serde_json::to_vec(&body)
            .map_err(|e| ProviderError::Stream(format!("cannot encode the request: {e}")))
    }

    /// A user turn: a plain string, or (pictures for a model that sees them) one image
    /// block per picture, in order, then the text block, if any. The pictures are
    /// encoded while the body is written.
    fn user_content<'a>(&self, turn: &'a ChatTurn) -> Content<'a> {
        if !self.config.vision || turn.images.is_empty() {
            return Content::Text(&turn.content);
        }
        let mut blocks: Vec<Block<'a>> = turn
            .images
            .iter()
            .map(|image| Block::Image {
                source: ImageSource {
                    kind: "base64",
                    media_type: image.media_type,
                    data: Base64(&image.data),
                },
            })
            .collect();
        if !turn.content.is_empty() {
            blocks.push(Block::Text { text: &turn.content });
        }
        Content::Blocks(blocks)
    }
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    async fn stream(&self, request: &ChatRequest) -> Result<AnswerStream, ProviderError> {
        let body = self.body(request)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.config.api_key {
            headers.insert(HeaderName::from_static("x-api-key"), secret_header(key.expose())?);
        }
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        self.transport.stream(&self.config.url("messages"), headers, body, MessagesDecoder::default()).await
    }

    fn sees_images(&self) -> bool {
        self.config.vision
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: MessageStart,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        usage: Option<OutputUsage>,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageStart {
    usage: Option<InputUsage>,
}

#[derive(Debug, Deserialize)]
struct InputUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Debug, Deserialize)]
struct BlockDelta {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OutputUsage {
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
}

/// Decodes Messages API events.
#[derive(Debug, Default)]
pub struct MessagesDecoder {
    input_tokens: u64,
    output_tokens: u64,
    stop_reason: Option<FinishReason>,
}

impl EventDecoder for MessagesDecoder {
    fn decode(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let Some(parsed) = parse_typed::<Event>(&event, "type") else {
            // The event name is the provider's text: credential shapes are redacted.
            let name = event.event.as_deref().map(|name| redact(name, None));
            debug!(event = ?name, "skipping a malformed Anthropic event");
            return Ok(());
        };
        match parsed {
            Event::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.input_tokens = usage.input_tokens;
                    self.output_tokens = usage.output_tokens;
                }
            }
            Event::ContentBlockDelta { delta } if delta.kind == "text_delta" && !delta.text.is_empty() => {
                out.push(StreamEvent::Delta(delta.text));
            }
            Event::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    self.stop_reason = Some(match reason.as_str() {
                        "max_tokens" => FinishReason::Length,
                        _ => FinishReason::Stop,
                    });
                }
                if let Some(usage) = usage {
                    self.output_tokens = usage.output_tokens;
                }
            }
            Event::MessageStop => {
                out.push(StreamEvent::Usage(Usage {
                    prompt_tokens: self.input_tokens,
                    completion_tokens: self.output_tokens,
                    estimated: false,
                }));
                out.push(StreamEvent::Finished(self.stop_reason.unwrap_or(FinishReason::Stop)));
            }
            Event::Error { error } => {
                return Err(match error.kind.as_str() {
                    "overloaded_error" => ProviderError::Overloaded,
                    "rate_limit_error" => ProviderError::RateLimited { retry_after: None },
                    "api_error" => ProviderError::Server { status: 500 },
                    other => ProviderError::Stream(format!("error event ({other})")),
                });
            }
            Event::ContentBlockDelta { .. } | Event::Other => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        Err(ProviderError::Stream("the stream ended before message_stop".into()))
    }
}
