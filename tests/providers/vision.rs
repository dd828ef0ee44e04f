//! Pictures in the request (`LLM_PROVIDER_<N>_VISION`): the exact `messages` each
//! provider receives for a conversation with pictures, with the flag on and off, and
//! `sees_images()` following the flag. The expected base64 text is spelled out here, not
//! computed with the encoder under test.

use std::sync::Arc;

use chatbox_application::ports::{ChatRequest, ChatTurn, InlineImage, LlmProvider, Role};
use chatbox_domain::{ModelId, SessionId, UserId};
use chatbox_llm::{AnthropicProvider, DifyProvider, OpenAiProvider};
use serde_json::{Value, json};

use super::fake_provider::{FakeProvider, Wire};
use super::{WORDS, config, drain};

/// A valid 1×1 red PNG (69 bytes: base64 without padding).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00,
    0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01,
    0x01, 0x00, 0xf7, 0x03, 0x41, 0x43, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];
const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4z8AAAAMBAQD3A0FDAAAAAElFTkSuQmCC";

/// A JPEG's start of image, JFIF header and end of image (22 bytes: base64 with `==`).
const JPEG: &[u8] = &[
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
    0x01, 0x00, 0x00, 0xff, 0xd9,
];
const JPEG_BASE64: &str = "/9j/4AAQSkZJRgABAQAAAQABAAD/2Q==";

fn png() -> InlineImage {
    InlineImage { media_type: "image/png", data: PNG.into() }
}

fn jpeg() -> InlineImage {
    InlineImage { media_type: "image/jpeg", data: JPEG.into() }
}

fn turn(role: Role, content: &str, images: Vec<InlineImage>) -> ChatTurn {
    ChatTurn { role, content: content.to_owned(), images }
}

fn request(history: Vec<ChatTurn>) -> ChatRequest {
    ChatRequest {
        model_id: ModelId::parse("m").expect("id"),
        system_prompt: Some("Be brief.".into()),
        history,
        user_id: UserId::parse("user-42").expect("id"),
        session_id: SessionId::parse("s1").expect("id"),
        conversation_id: None,
    }
}

/// A user turn with text and two pictures, an answer, a user turn with text only.
fn conversation() -> ChatRequest {
    request(vec![
        turn(Role::User, "What is in these pictures?", vec![png(), jpeg()]),
        ChatTurn::text(Role::Assistant, "A red pixel and an empty JPEG."),
        ChatTurn::text(Role::User, "Which one is larger?"),
    ])
}

fn provider(wire: Wire, endpoint: String, vision: bool) -> Arc<dyn LlmProvider> {
    let config = chatbox_llm::ProviderConfig { vision, ..config(endpoint) };
    match wire {
        Wire::OpenAi => Arc::new(OpenAiProvider::new(config).expect("client")),
        Wire::Anthropic => Arc::new(AnthropicProvider::new(config).expect("client")),
        Wire::Dify => Arc::new(DifyProvider::new(config).expect("client")),
    }
}

/// The `messages` the stand-in server received for `request`.
async fn sent_messages(wire: Wire, vision: bool, request: ChatRequest) -> Value {
    let server = FakeProvider::start().await;
    server.push(wire.answer(&WORDS, 64));
    let stream = provider(wire, server.url("/v1"), vision).stream(&request).await.expect("started");
    let (_, error) = drain(stream).await;
    assert!(error.is_none(), "{wire:?}: {error:?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{wire:?}");
    requests[0].body["messages"].clone()
}

/// What the conversation becomes without its pictures, in either wire format.
fn text_only(wire: Wire) -> Value {
    let turns = json!([
        {"role": "user", "content": "What is in these pictures?"},
        {"role": "assistant", "content": "A red pixel and an empty JPEG."},
        {"role": "user", "content": "Which one is larger?"},
    ]);
    match wire {
        Wire::OpenAi => {
            let mut messages = vec![json!({"role": "system", "content": "Be brief."})];
            messages.extend(turns.as_array().expect("array").iter().cloned());
            Value::Array(messages)
        }
        Wire::Anthropic | Wire::Dify => turns,
    }
}

#[tokio::test]
async fn openai_sends_the_text_then_each_picture_as_a_data_url() {
    let messages = sent_messages(Wire::OpenAi, true, conversation()).await;
    let expected = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in these pictures?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_BASE64}")}},
            {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{JPEG_BASE64}")}},
        ]},
        {"role": "assistant", "content": "A red pixel and an empty JPEG."},
        {"role": "user", "content": "Which one is larger?"},
    ]);
    assert_eq!(messages, expected);
}

#[tokio::test]
async fn anthropic_sends_each_picture_as_a_base64_block_then_the_text() {
    let messages = sent_messages(Wire::Anthropic, true, conversation()).await;
    let expected = json!([
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG_BASE64}},
            {"type": "text", "text": "What is in these pictures?"},
        ]},
        {"role": "assistant", "content": "A red pixel and an empty JPEG."},
        {"role": "user", "content": "Which one is larger?"},
    ]);
    assert_eq!(messages, expected);
}

#[tokio::test]
async fn with_the_flag_off_the_same_turns_send_their_text_only() {
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        let messages = sent_messages(wire, false, conversation()).await;
        assert_eq!(messages, text_only(wire), "{wire:?}");
    }
}

#[tokio::test]
async fn a_picture_without_text_sends_no_empty_text_part_and_answers_never_carry_pictures() {
    let history = || {
        vec![
            turn(Role::User, "", vec![jpeg()]),
            // An answer handed pictures by mistake still sends its text only.
            turn(Role::Assistant, "Blank.", vec![png()]),
            ChatTurn::text(Role::User, "Sure?"),
        ]
    };
    let openai = sent_messages(Wire::OpenAi, true, request(history())).await;
    assert_eq!(
        openai,
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{JPEG_BASE64}")}},
            ]},
            {"role": "assistant", "content": "Blank."},
            {"role": "user", "content": "Sure?"},
        ])
    );
    let anthropic = sent_messages(Wire::Anthropic, true, request(history())).await;
    assert_eq!(
        anthropic,
        json!([
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG_BASE64}},
            ]},
            {"role": "assistant", "content": "Blank."},
            {"role": "user", "content": "Sure?"},
        ])
    );
}

#[test]
fn sees_images_follows_the_flag() {
    let endpoint = || "http://127.0.0.1:9/v1".to_owned();
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        assert!(provider(wire, endpoint(), true).sees_images(), "{wire:?}");
        assert!(!provider(wire, endpoint(), false).sees_images(), "{wire:?}");
    }
    assert!(!provider(Wire::Dify, endpoint(), false).sees_images());
}

#[test]
fn text_only_bodies_are_byte_for_byte_what_they_were_before_pictures() {
    let history = vec![
        ChatTurn::text(Role::User, "first question"),
        ChatTurn::text(Role::Assistant, "first answer"),
        ChatTurn::text(Role::User, "second question"),
    ];
    let config = chatbox_llm::ProviderConfig { vision: true, ..config("http://127.0.0.1:9/v1".to_owned()) };
    let openai = OpenAiProvider::new(config.clone()).expect("client").body(&request(history.clone()));
    assert_eq!(String::from_utf8(openai.expect("body")).expect("utf-8"), OPENAI_TEXT_BODY);
    let anthropic = AnthropicProvider::new(config).expect("client").body(&request(history));
    assert_eq!(String::from_utf8(anthropic.expect("body")).expect("utf-8"), ANTHROPIC_TEXT_BODY);
}

/// The bodies the adapters sent before pictures existed (recorded by running this test
/// against that version of the adapters).
const OPENAI_TEXT_BODY: &str = concat!(
    r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"first question"},"#,
    r#"{"role":"assistant","content":"first answer"},{"role":"user","content":"second question"}],"#,
    r#""model":"model-x","stream":true,"max_tokens":256,"stream_options":{"include_usage":true},"#,
    r#""temperature":0.2}"#,
);
const ANTHROPIC_TEXT_BODY: &str = concat!(
    r#"{"model":"model-x","max_tokens":256,"system":"Be brief.","messages":[{"role":"user","content":"first question"},"#,
    r#"{"role":"assistant","content":"first answer"},{"role":"user","content":"second question"}],"#,
    r#""stream":true,"temperature":0.2}"#,
);
