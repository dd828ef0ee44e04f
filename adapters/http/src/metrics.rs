//! Metrics at the HTTP edge: the scrape route, the timing of HTTP routes ([`timed`]),
//! and the wire type of each frame for the per-type frame counters.
//!
//! The scrape answers at `/metrics` and `P/metrics/prometheus` (the path prefix's), to
//! clients whose address is in `METRICS_ALLOWED_NETWORKS` (an empty list allows every
//! client) and with 403 `FORBIDDEN` to the others. The address is the TCP peer's
//! ([`ClientAddr`]): `X-Forwarded-For` is not believed here, since anyone can send it.
//!
//! Classifying a frame is a `match` on values already at hand: no allocation, no
//! parsing twice.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chatbox_application::commands::ClientCommand;
use chatbox_application::events::{AnswerStyle, ServerEvent};
use chatbox_application::ports::{FrameType, Metrics, MetricsExposition, NoMetrics};
use chatbox_domain::{ErrorCode, MessageKind, Sender};
use http::{HeaderValue, StatusCode, header};
use ipnet::IpNet;
use tracing::warn;
use warp::Filter;
use warp::filters::BoxedFilter;

use crate::HttpState;
use crate::routes::{HttpResponse, error_response};
use crate::server::ClientAddr;
use crate::wire::{Inbound, WireError};

/// What the HTTP adapter needs for metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    /// Where sockets record their events.
    pub recorder: Arc<dyn Metrics>,
    /// What the scrape route serves.
    pub exposition: Arc<dyn MetricsExposition>,
    /// `METRICS_ALLOWED_NETWORKS`: who may scrape; empty allows everyone.
    pub allowed_networks: Vec<IpNet>,
}

impl HttpMetrics {
    /// No metrics: nothing recorded, an empty scrape for everyone.
    #[must_use]
    pub fn none() -> Self {
        Self { recorder: Arc::new(NoMetrics), exposition: Arc::new(NoMetrics), allowed_networks: Vec::new() }
    }

    /// Whether `client` may scrape.
    fn allows(&self, client: Option<ClientAddr>) -> bool {
        if self.allowed_networks.is_empty() {
            return true;
        }
        // An IPv4 client on a dual-stack listener shows as ::ffff:a.b.c.d.
        client.is_some_and(|ClientAddr(address)| {
            let ip: IpAddr = address.ip().to_canonical();
            self.allowed_networks.iter().any(|network| network.contains(&ip))
        })
    }
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics")
            .field("allowed_networks", &self.allowed_networks)
            .finish_non_exhaustive()
    }
}

/// `filter`, with each response it gives recorded in
/// `chatbox_http_request_duration_seconds` under `route` (a template such as
/// `/sessions/{id}/end`, never the path itself), the method and the status. Requests
/// that `filter` rejects (another route's) are not recorded here.
pub(crate) fn timed<F>(state: &Arc<HttpState>, route: &'static str, filter: F) -> BoxedFilter<(HttpResponse,)>
where
    F: Filter<Extract = (HttpResponse,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
{
    let recorder = Arc::clone(&state.metrics.recorder);
    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(filter)
        .map(move |started: Instant, method: http::Method, response: HttpResponse| {
            recorder.http_request(route, method.as_str(), response.status().as_u16(), started.elapsed());
            response
        })
        .boxed()
}

/// `GET /metrics` and `GET P/metrics/prometheus` (timed as route `/metrics`).
pub(crate) fn route(state: &Arc<HttpState>) -> BoxedFilter<(HttpResponse,)> {
    let root = warp::path("metrics").and(warp::path::end());
    let prefixed = prefix(&state.config.path_prefix)
        .and(warp::path("metrics"))
        .and(warp::path("prometheus"))
        .and(warp::path::end());
    let shared = Arc::clone(state);
    let scrape = root
        .or(prefixed)
        .unify()
        .and(warp::get())
        .and(warp::ext::optional::<ClientAddr>())
        .map(move |client: Option<ClientAddr>| scrape(&shared.metrics, client));
    timed(state, "/metrics", scrape)
}

/// The path prefix's segments (`/chat` → `chat`).
fn prefix(path: &str) -> BoxedFilter<()> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .fold(warp::any().boxed(), |filter, segment| filter.and(warp::path(segment.to_owned())).boxed())
}

fn scrape(metrics: &HttpMetrics, client: Option<ClientAddr>) -> HttpResponse {
    if !metrics.allows(client) {
        return error_response(ErrorCode::Forbidden, "Metrics are not available from this address", None);
    }
    match metrics.exposition.render() {
        Ok(text) => {
            let mut response = HttpResponse::new(text.into());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(metrics.exposition.content_type()));
            response
        }
        Err(error) => {
            warn!(%error, "metrics scrape failed");
            let mut response = error_response(ErrorCode::ServiceError, "Metrics are unavailable", None);
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use chatbox_application::events::Frame;
    use chatbox_domain::{
        AnswerTiming, FinishReason, MessageId, ModelId, Seq, SessionId, StoredMessage, Timestamp, UserId,
    };

    use super::*;
    use crate::wire;

    fn client(address: &str) -> Option<ClientAddr> {
        Some(ClientAddr(address.parse::<SocketAddr>().expect("address")))
    }

    fn allowing(networks: &[&str]) -> HttpMetrics {
        HttpMetrics {
            allowed_networks: networks.iter().map(|n| n.parse().expect("cidr")).collect(),
            ..HttpMetrics::none()
        }
    }

    #[test]
    fn only_clients_in_the_allowed_networks_may_scrape() {
        let metrics = allowing(&["10.0.0.0/8", "::1/128"]);
        assert!(metrics.allows(client("10.1.2.3:5000")));
        assert!(metrics.allows(client("[::ffff:10.1.2.3]:5000")), "IPv4 on a dual-stack socket");
        assert!(metrics.allows(client("[::1]:5000")));
        assert!(!metrics.allows(client("127.0.0.1:5000")));
        assert!(!metrics.allows(client("[::ffff:192.168.0.1]:5000")));
        assert!(!metrics.allows(None), "no address, no scrape");
        assert!(allowing(&[]).allows(client("203.0.113.9:1")), "an empty list allows everyone");
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
            assert_eq!(received_type(&parsed).as_str(), expected, "{text}");
            assert!(FrameType::RECEIVED.contains(&received_type(&parsed)));
        }
    }
}
