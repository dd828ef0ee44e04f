//! `openai`: any OpenAI-compatible chat-completions server (OpenAI, Azure-style
//! gateways, vLLM, Ollama, LM Studio, OpenRouter).
//!
//! The request is built with `async-openai`'s typed models (`CreateChatCompletionRequest`)
//! and its `OpenAIConfig` (base URL, bearer key, organisation and project headers). The
//! transport is our own: async-openai's client hides `Retry-After`, logs server error
//! bodies at warn level and buffers events in an unbounded channel, none of which a
//! gateway can accept. Streamed chunks are read leniently (only the fields we use), so
//! servers that omit `id`, `created` or `object` still work.
//!
//! A user turn with pictures, for a model configured with `_VISION`, sends `content` as
//! an array of parts: the text first (left out when empty), then one `image_url` part per
//! picture holding a `data:` URL. Every other turn sends `content` as a plain string.
//!
//! Usage comes from `stream_options.include_usage`: a final chunk with empty `choices`
//! and the token counts, before `data: [DONE]`.

use async_openai::config::{Config, OpenAIConfig};
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestMessageContentPartImage, ChatCompletionRequestMessageContentPartText,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionRequestUserMessageContentPart,
    ChatCompletionStreamOptions, CreateChatCompletionRequest, ImageUrl,
};
use async_trait::async_trait;
use chatbox_application::ports::{
    AnswerStream, ChatRequest, ChatTurn, LlmProvider, ProviderError, Role, StreamEvent,
};
use chatbox_domain::{FinishReason, Usage};
use serde::Deserialize;
use tracing::debug;

use crate::config::ProviderConfig;
use crate::images::data_url;
use crate::redact::redact;
use crate::sse::SseEvent;
use crate::transport::{EventDecoder, Transport};

/// The `openai` provider.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    transport: Transport,
    config: ProviderConfig,
    openai: OpenAIConfig,
}

impl OpenAiProvider {
    /// A provider for `config`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: ProviderConfig) -> Result<Self, crate::client::ClientError> {
        let mut openai = OpenAIConfig::new().with_api_base(config.endpoint.trim_end_matches('/'));
        if let Some(key) = &config.api_key {
            openai = openai.with_api_key(key.expose());
        }
        Ok(Self { transport: Transport::new("openai", config.api_key.clone())?, config, openai })
    }

    /// The JSON body for `request`.
    ///
    /// # Errors
    /// When the body cannot be serialised.
    pub fn body(&self, request: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        let mut messages = Vec::with_capacity(request.history.len() + 1);
        if let Some(system) = &request.system_prompt {
            messages.push(ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage::from(
                system.as_str(),
            )));
        }
        for turn in &request.history {
            messages.push(match turn.role {
                Role::User => ChatCompletionRequestMessage::User(self.user_message(turn)),
                Role::Assistant => ChatCompletionRequestMessage::Assistant(
                    ChatCompletionRequestAssistantMessage::from(turn.content.as_str()),
                ),
            });
        }
        let mut body = CreateChatCompletionRequest {
            model: self.config.model.clone().unwrap_or_default(),
            messages,
            stream: Some(true),
            stream_options: Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                ..Default::default()
            }),
            temperature: self.config.temperature,
            ..Default::default()
        };
        // OpenAI's own API wants `max_completion_tokens`; compatible servers (vLLM,
        // Ollama, LM Studio, most gateways) understand `max_tokens`.
        if self.openai.api_base().contains("api.openai.com") {
            body.max_completion_tokens = self.config.max_tokens;
        } else {
            #[allow(deprecated)]
            {
                body.max_tokens = self.config.max_tokens;
            }
        }
        serde_json::to_vec(&body)
            .map_err(|e| ProviderError::Stream(format!("cannot encode the request: {e}")))
    }

    /// A user turn: a plain string, or (pictures for a model that sees them) the text
    /// part, if any, then one `image_url` part per picture, in order.
    fn user_message(&self, turn: &ChatTurn) -> ChatCompletionRequestUserMessage {
        if !self.config.vision || turn.images.is_empty() {
            return ChatCompletionRequestUserMessage::from(turn.content.as_str());
        }
        let mut parts = Vec::with_capacity(turn.images.len() + 1);
        if !turn.content.is_empty() {
            parts.push(ChatCompletionRequestUserMessageContentPart::Text(
                ChatCompletionRequestMessageContentPartText {
                    text: turn.content.clone(),
                    ..Default::default()
                },
            ));
        }
        parts.extend(turn.images.iter().map(|image| {
            ChatCompletionRequestUserMessageContentPart::ImageUrl(
                ChatCompletionRequestMessageContentPartImage {
                    image_url: ImageUrl { url: data_url(image), detail: None },
                    ..Default::default()
                },
            )
        }));
        ChatCompletionRequestUserMessage::from(ChatCompletionRequestUserMessageContent::Array(parts))
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    async fn stream(&self, request: &ChatRequest) -> Result<AnswerStream, ProviderError> {
        let body = self.body(request)?;
        let mut headers = self.openai.headers();
        for value in headers.values_mut() {
            value.set_sensitive(true);
        }
        self.transport
            .stream(&self.openai.url("/chat/completions"), headers, body, ChunkDecoder::default())
            .await
    }

    fn sees_images(&self) -> bool {
        self.config.vision
    }
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<UsageDto>,
    error: Option<ErrorDto>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UsageDto {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Debug, Deserialize)]
struct ErrorDto {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// Decodes chat-completion chunks.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    finish: Option<FinishReason>,
}

impl EventDecoder for ChunkDecoder {
    fn decode(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            out.push(StreamEvent::Finished(self.finish.unwrap_or(FinishReason::Stop)));
            return Ok(());
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(error) => {
                // A parse error may quote the chunk: credential shapes are redacted.
                let error = redact(&error.to_string(), None);
                debug!(%error, "skipping a malformed chat-completion chunk");
                return Ok(());
            }
        };
        if let Some(error) = chunk.error {
            let kind = error.kind.unwrap_or_default();
            return Err(match kind.as_str() {
                "server_error" | "internal_error" => ProviderError::Server { status: 500 },
                "rate_limit_exceeded" | "rate_limit_error" => {
                    ProviderError::RateLimited { retry_after: None }
                }
                "overloaded_error" => ProviderError::Overloaded,
                _ => ProviderError::Stream(format!(
                    "error event ({kind}{})",
                    error.code.map(|c| format!(", {c}")).unwrap_or_default()
                )),
            });
        }
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(content) = choice.delta.content.filter(|c| !c.is_empty()) {
                out.push(StreamEvent::Delta(content));
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(match reason.as_str() {
                    "length" => FinishReason::Length,
                    _ => FinishReason::Stop,
                });
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage(Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                estimated: false,
            }));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        // Some compatible servers close the stream without `[DONE]` after the last
        // chunk; a finish reason says the answer is complete all the same.
        match self.finish {
            Some(reason) => {
                out.push(StreamEvent::Finished(reason));
                Ok(())
            }
            None => Err(ProviderError::Stream("the stream ended before the answer was complete".into())),
        }
    }
}
