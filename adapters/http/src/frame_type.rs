//! The type of each WebSocket frame as the wire format names it, and the per-type frame
//! counters of the metrics port.
//!
//! The frame types belong to the wire format (`wire.rs`), so they live beside it: the
//! metrics port only learns their names. At start-up the router asks the port for one
//! [`FrameCounter`] per type and direction (`FrameCounters::new`); per frame, a socket
//! classifies it with a `match` on values already at hand and bumps its counter: one
//! relaxed atomic add, no lock, no allocation, no parsing twice.

use chatbox_application::commands::ClientCommand;
use chatbox_application::events::{AnswerStyle, ServerEvent};
use chatbox_application::ports::{FrameCounter, FrameDirection, Metrics};
use chatbox_domain::{MessageKind, Sender};

use crate::wire::{Inbound, WireError};

/// The type of a WebSocket frame, as on the wire. A fixed set: frames whose type is
/// unknown, or that were refused before their type was read, are [`FrameType::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// `user_message`.
    UserMessage,
    /// `user` (the short alias).
    User,
    /// `ai_response`.
    AiResponse,
    /// `assistant`.
    Assistant,
    /// `file_upload`.
    FileUpload,
    /// `voice_message`.
    VoiceMessage,
    /// `model_select`.
    ModelSelect,
    /// `stop`.
    Stop,
    /// `help_request`.
    HelpRequest,
    /// `typing_indicator`.
    TypingIndicator,
    /// `resume`.
    Resume,
    /// `ping`.
    Ping,
    /// `pong`.
    Pong,
    /// `connection_status`.
    ConnectionStatus,
    /// `loading`.
    Loading,
    /// `message_ack`.
    MessageAck,
    /// `admin_join`.
    AdminJoin,
    /// `admin_leave`.
    AdminLeave,
    /// `error`.
    Error,
    /// `notification`.
    Notification,
    /// Anything else.
    Other,
}

impl FrameType {
    /// Every frame type, in [`index`](Self::index) order.
    pub const ALL: [Self; 21] = [
        Self::UserMessage,
        Self::User,
        Self::AiResponse,
        Self::Assistant,
        Self::FileUpload,
        Self::VoiceMessage,
        Self::ModelSelect,
        Self::Stop,
        Self::HelpRequest,
        Self::TypingIndicator,
        Self::Resume,
        Self::Ping,
        Self::Pong,
        Self::ConnectionStatus,
        Self::Loading,
        Self::MessageAck,
        Self::AdminJoin,
        Self::AdminLeave,
        Self::Error,
        Self::Notification,
        Self::Other,
    ];

    /// The types a client sends. A frame refused before it reached the service is
    /// counted apart, as refused ([`FrameDirection::Refused`]), whatever its type.
    pub const RECEIVED: [Self; 10] = [
        Self::UserMessage,
        Self::User,
        Self::FileUpload,
        Self::VoiceMessage,
        Self::ModelSelect,
        Self::Stop,
        Self::HelpRequest,
        Self::TypingIndicator,
        Self::Resume,
        Self::Ping,
    ];

    /// The types the server sends.
    pub const SENT: [Self; 15] = [
        Self::ConnectionStatus,
        Self::Loading,
        Self::AiResponse,
        Self::Assistant,
        Self::UserMessage,
        Self::FileUpload,
        Self::VoiceMessage,
        Self::MessageAck,
        Self::AdminJoin,
        Self::AdminLeave,
        Self::TypingIndicator,
        Self::Error,
        Self::Notification,
        Self::Pong,
        Self::Other,
    ];

    /// Its position in [`ALL`](Self::ALL): an index into a per-type array.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The wire spelling (the label value).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserMessage => "user_message",
            Self::User => "user",
            Self::AiResponse => "ai_response",
            Self::Assistant => "assistant",
            Self::FileUpload => "file_upload",
            Self::VoiceMessage => "voice_message",
            Self::ModelSelect => "model_select",
            Self::Stop => "stop",
            Self::HelpRequest => "help_request",
            Self::TypingIndicator => "typing_indicator",
            Self::Resume => "resume",
            Self::Ping => "ping",
            Self::Pong => "pong",
            Self::ConnectionStatus => "connection_status",
            Self::Loading => "loading",
            Self::MessageAck => "message_ack",
            Self::AdminJoin => "admin_join",
            Self::AdminLeave => "admin_leave",
            Self::Error => "error",
            Self::Notification => "notification",
            Self::Other => "other",
        }
    }
}

/// The wire type of a frame read from a client; frames refused by the parser are
/// `other` (their type may be unknown, or the very thing that was wrong).
pub(crate) const fn received_type(parsed: &Result<Inbound, WireError>) -> FrameType {
    match parsed {
        Ok(Inbound::Ping) => FrameType::Ping,
        Ok(Inbound::Command(command)) => match command {
            ClientCommand::SendMessage(message) => match message.style {
                AnswerStyle::AiResponse => FrameType::UserMessage,
                AnswerStyle::Assistant => FrameType::User,
            },
            ClientCommand::Attachment(attachment) => match attachment.kind {
                MessageKind::Voice => FrameType::VoiceMessage,
                _ => FrameType::FileUpload,
            },
            ClientCommand::SelectModel { .. } => FrameType::ModelSelect,
            ClientCommand::Stop { .. } => FrameType::Stop,
            ClientCommand::HelpRequest { .. } => FrameType::HelpRequest,
            ClientCommand::Typing { .. } => FrameType::TypingIndicator,
            ClientCommand::Resume { .. } => FrameType::Resume,
        },
        Err(_) => FrameType::Other,
    }
}

/// The wire type of a frame written to a client (as `wire::encode` names it).
pub(crate) fn sent_type(event: &ServerEvent) -> FrameType {
    const fn answer(style: AnswerStyle) -> FrameType {
        match style {
            AnswerStyle::AiResponse => FrameType::AiResponse,
            AnswerStyle::Assistant => FrameType::Assistant,
        }
    }
    match event {
        ServerEvent::ConnectionStatus { .. } => FrameType::ConnectionStatus,
        ServerEvent::Loading { .. } => FrameType::Loading,
        ServerEvent::AnswerChunk { style, .. } | ServerEvent::AnswerDone { style, .. } => answer(*style),
        ServerEvent::Stored { message, .. } => match (message.kind, message.sender) {
            (MessageKind::File, _) => FrameType::FileUpload,
            (MessageKind::Voice, _) => FrameType::VoiceMessage,
            (MessageKind::Text, Sender::Ai) => FrameType::AiResponse,
            (MessageKind::Text, _) => FrameType::UserMessage,
        },
        ServerEvent::MessageAck { .. } => FrameType::MessageAck,
        ServerEvent::Handoff { joined: true, .. } => FrameType::AdminJoin,
        ServerEvent::Handoff { joined: false, .. } => FrameType::AdminLeave,
        ServerEvent::Typing { .. } => FrameType::TypingIndicator,
        ServerEvent::Error { .. } => FrameType::Error,
        ServerEvent::Notification { .. } => FrameType::Notification,
        ServerEvent::Pong => FrameType::Pong,
    }
}

/// The frame counters, by direction and [`FrameType::index`]. A frame read and refused
/// (type `other`) counts as refused. A type that does not travel in a direction shares
/// that direction's fallback counter (refused for reads, `other` for writes), so a
/// misclassified frame is still counted instead of vanishing from the scrape.
#[derive(Debug)]
pub(crate) struct FrameCounters {
    received: [FrameCounter; FrameType::ALL.len()],
    sent: [FrameCounter; FrameType::ALL.len()],
}

impl FrameCounters {
    /// Asks `metrics` for a counter per type of each direction: [`FrameType::RECEIVED`]
    /// read, [`FrameType::SENT`] written.
    pub(crate) fn new(metrics: &dyn Metrics) -> Self {
        Self::handed_out_by(|direction, frame_type| metrics.frame_counter(direction, frame_type))
    }

    /// The counters `hand_out` gives for each type of each direction.
    fn handed_out_by(mut hand_out: impl FnMut(FrameDirection, &'static str) -> FrameCounter) -> Self {
        let mut by_type = |direction, directed: &[FrameType], fallback| {
            let handed: Vec<(FrameType, FrameCounter)> =
                directed.iter().map(|frame| (*frame, hand_out(direction, frame.as_str()))).collect();
            let other = handed.iter().find(|(frame, _)| *frame == FrameType::Other).map_or_else(
                || hand_out(fallback, FrameType::Other.as_str()),
                |(_, counter)| counter.clone(),
            );
            let mut counters: [FrameCounter; FrameType::ALL.len()] = std::array::from_fn(|_| other.clone());
            for (frame, counter) in handed {
                counters[frame.index()] = counter;
            }
            counters
        };
        let received = by_type(FrameDirection::Received, &FrameType::RECEIVED, FrameDirection::Refused);
        let sent = by_type(FrameDirection::Sent, &FrameType::SENT, FrameDirection::Sent);
        Self { received, sent }
    }

    /// Counts a frame read from a client.
    pub(crate) fn received(&self, frame: FrameType) {
        self.received[frame.index()].increment();
    }

    /// Counts a frame written to a client.
    pub(crate) fn sent(&self, frame: FrameType) {
        self.sent[frame.index()].increment();
    }
}

#[cfg(test)]
mod tests {

    /// The `type` values the operations guide lists for a frame counter.
    fn documented_types(metric: &str) -> std::collections::BTreeSet<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
        let guide = std::fs::read_to_string(path).expect("docs/operations.md");
        let row = guide
            .lines()
            .find(|line| line.starts_with(&format!("| `{metric}`")))
            .unwrap_or_else(|| panic!("docs/operations.md has a row for {metric}"));
        let description = row.rsplit('|').nth(1).expect("a description cell");
        description.split('`').skip(1).step_by(2).map(str::to_owned).collect()
    }

    /// The label values each frame counter can take are exactly those the operations
    /// guide lists (dashboards are written from it).
    #[test]
    fn the_guide_lists_exactly_the_frame_types_of_each_counter() {
        for (metric, types) in [
            ("chatbox_messages_received_total", &FrameType::RECEIVED[..]),
            ("chatbox_messages_sent_total", &FrameType::SENT[..]),
        ] {
            let code: std::collections::BTreeSet<String> =
                types.iter().map(|frame| frame.as_str().to_owned()).collect();
            assert_eq!(documented_types(metric), code, "{metric}");
        }
    }

    use std::sync::Arc;
    use std::time::Duration;

    use chatbox_application::events::Frame;
    use chatbox_domain::{
        AnswerTiming, ErrorCode, FinishReason, MessageId, ModelId, Seq, SessionId, StoredMessage, Timestamp,
        UserId,
    };

    use super::*;
    use crate::wire;

    #[test]
    fn frame_type_indexes_match_their_place_in_all() {
        for (position, frame) in FrameType::ALL.iter().enumerate() {
            assert_eq!(frame.index(), position, "{frame:?}");
        }
        let mut names: Vec<_> = FrameType::ALL.iter().map(|f| f.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FrameType::ALL.len(), "label values are distinct");
    }

    #[test]
    fn each_direction_asks_for_its_types_once_and_a_type_outside_it_counts_as_other() {
        let mut handed = Vec::new();
        let counters = FrameCounters::handed_out_by(|direction, frame_type| {
            let counter = FrameCounter::new();
            handed.push((direction, frame_type, counter.clone()));
            counter
        });
        let total = |direction, frame_type: &str| -> u64 {
            let matching: Vec<_> =
                handed.iter().filter(|(d, t, _)| *d == direction && *t == frame_type).collect();
            assert_eq!(matching.len(), 1, "{direction:?} {frame_type} asked for once");
            matching[0].2.total()
        };
        counters.received(FrameType::Loading);
        counters.received(FrameType::Ping);
        counters.sent(FrameType::Resume);
        counters.sent(FrameType::Pong);
        counters.sent(FrameType::Pong);
        counters.received(FrameType::Other);
        assert_eq!(total(FrameDirection::Refused, "other"), 2, "refused, and loading is never read");
        assert_eq!(total(FrameDirection::Received, "ping"), 1);
        assert_eq!(total(FrameDirection::Received, "user_message"), 0);
        assert_eq!(total(FrameDirection::Sent, "other"), 1, "resume is never written");
        assert_eq!(total(FrameDirection::Sent, "pong"), 2);
        assert_eq!(handed.len(), FrameType::RECEIVED.len() + 1 + FrameType::SENT.len());
    }

    fn id<T>(parse: fn(&str) -> Result<T, chatbox_domain::validation::InvalidValue>, s: &str) -> T {
        parse(s).expect("id")
    }

    #[test]
    fn sent_types_are_the_types_the_encoder_writes() {
        let session_id = id(SessionId::parse, "s1");
        let message_id = id(MessageId::parse, "m1");
        let model_id = id(ModelId::parse, "demo");
        let stored = |kind, sender| {
            let mut message =
                StoredMessage::text(message_id.clone(), Seq(1), sender, "hi".into(), Timestamp::default());
            message.kind = kind;
            ServerEvent::Stored { session_id: session_id.clone(), message: Arc::new(message) }
        };
        let events = vec![
            ServerEvent::ConnectionStatus {
                user_id: id(UserId::parse, "u"),
                session_id: session_id.clone(),
                models: Arc::from(Vec::new()),
                model_id: model_id.clone(),
                state: "connected",
                content: None,
            },
            ServerEvent::Loading {
                session_id: session_id.clone(),
                message_id: message_id.clone(),
                style: AnswerStyle::AiResponse,
            },
            ServerEvent::AnswerChunk {
                session_id: session_id.clone(),
                message_id: message_id.clone(),
                model_id: model_id.clone(),
                delta: Arc::from("x"),
                style: AnswerStyle::Assistant,
            },
            ServerEvent::AnswerDone {
                session_id: session_id.clone(),
                message_id: message_id.clone(),
                model_id,
                seq: None,
                finish_reason: FinishReason::Stop,
                usage: None,
                timing: AnswerTiming { first_token: None, total: Duration::ZERO },
                style: AnswerStyle::AiResponse,
            },
            stored(MessageKind::Text, Sender::User),
            stored(MessageKind::Text, Sender::Ai),
            stored(MessageKind::File, Sender::User),
            stored(MessageKind::Voice, Sender::User),
            ServerEvent::MessageAck {
                session_id: session_id.clone(),
                message_id,
                seq: Seq(1),
                client_message_id: id(chatbox_domain::ClientMessageId::parse, "c1"),
            },
            ServerEvent::Typing { session_id, user_id: id(UserId::parse, "u"), typing: true },
            ServerEvent::Error {
                session_id: None,
                code: ErrorCode::BadRequest,
                message: "x".into(),
                retry_after: None,
            },
            ServerEvent::Notification { content: "x".into() },
            ServerEvent::Pong,
        ];
        for event in events {
            let expected = sent_type(&event).as_str();
            let frame = Frame::new(event, Timestamp::default());
            let encoded: serde_json::Value = serde_json::from_str(&wire::encode(&frame)).expect("json");
            assert_eq!(encoded["type"], expected, "{:?}", frame.event);
            assert!(FrameType::SENT.iter().any(|t| t.as_str() == expected), "{expected} is a sent type");
        }
    }

    #[test]
    fn received_types_are_the_types_the_client_wrote_and_refused_frames_are_other() {
        let now = Timestamp::default();
        let cases = [
            (r#"{"type":"user_message","content":"hi"}"#, "user_message"),
            (r#"{"type":"user","content":"hi"}"#, "user"),
            (
                r#"{"type":"voice_message","file_id":"f","file_url":"https://example.com/a.ogg"}"#,
                "voice_message",
            ),
            (r#"{"type":"file_upload","file_id":"f","file_url":"https://example.com/a.png"}"#, "file_upload"),
            (r#"{"type":"model_select","model_id":"demo"}"#, "model_select"),
            (r#"{"type":"stop"}"#, "stop"),
            (r#"{"type":"help_request"}"#, "help_request"),
            (r#"{"type":"typing_indicator"}"#, "typing_indicator"),
            (r#"{"type":"resume","session_id":"s","last_seq":0}"#, "resume"),
            (r#"{"type":"ping"}"#, "ping"),
            (r#"{"type":"teleport"}"#, "other"),
            (r#"{"type":"user_message"}"#, "other"),
            ("not json", "other"),
        ];
        for (text, expected) in cases {
            let parsed = wire::parse_frame(text, 100, now);
            let frame = received_type(&parsed);
            assert_eq!(frame.as_str(), expected, "{text}");
            // A refused frame is counted as refused, an accepted one under its type.
            assert_eq!(FrameType::RECEIVED.contains(&frame), parsed.is_ok(), "{text}");
        }
    }
}
