//! The client side of every subcommand: which server is driven (the gateway, the floor
//! server, Centrifugo), tokens minted for it, sockets opened and frames read with
//! deadlines, and the timing markers a streamed token carries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client WebSocket over plain TCP.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a frame that is expected may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// The kind of server driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Chatbox: JWT in `?token=`, `connection_status` first, sessions, answers.
    Chatbox,
    /// `chatbox-load floor`: the same frames, no auth, storage or protocol behind them.
    Floor,
    /// Centrifugo v6: JSON protocol, a `connect` command carrying an HMAC token.
    Centrifugo,
}

/// The server under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    /// The WebSocket URL without query, e.g. `ws://127.0.0.1:8080/chat/ws`.
    pub url: String,
    pub secret: String,
}

impl Target {
    /// The target of `--target`, `--url` and `--secret`: one server.
    pub fn from_args(args: &crate::args::Args) -> anyhow::Result<Self> {
        let mut replicas = Self::replicas_from_args(args)?;
        if replicas.len() > 1 {
            bail!("--url names one server here (several, comma-separated, only for fanout)");
        }
        Ok(replicas.remove(0))
    }

    /// The targets of `--url a,b,…`: replicas of one service, each a server of the same
    /// kind sharing the secret.
    pub fn replicas_from_args(args: &crate::args::Args) -> anyhow::Result<Vec<Self>> {
        let kind = match args.text("target").unwrap_or("chatbox") {
            "chatbox" => Kind::Chatbox,
            "floor" => Kind::Floor,
            "centrifugo" => Kind::Centrifugo,
            other => bail!("--target {other:?}: chatbox, floor or centrifugo"),
        };
        let default_url = match kind {
            Kind::Chatbox => "ws://127.0.0.1:8080/chat/ws",
            Kind::Floor => "ws://127.0.0.1:9090/chat/ws",
            Kind::Centrifugo => "ws://127.0.0.1:8000/connection/websocket",
        };
        let urls = args.text("url").unwrap_or(default_url);
        let secret = match (kind, args.text("secret")) {
            (_, Some(secret)) => secret.to_owned(),
            (Kind::Floor, None) => "floor-needs-no-secret".to_owned(),
            (_, None) => std::env::var("JWT_SECRET").context("--secret or JWT_SECRET is required")?,
        };
        let replicas: Vec<Self> = urls
            .split(',')
            .map(|url| Self { kind, url: url.trim().to_owned(), secret: secret.clone() })
            .collect();
        if replicas.iter().any(|target| target.url.is_empty()) {
            bail!("--url {urls:?}: an empty URL");
        }
        Ok(replicas)
    }

    /// An HS256 token for `user`, valid for two hours (`user_id` for Chatbox, `sub` for
    /// Centrifugo).
    pub fn token(&self, user: &str) -> anyhow::Result<String> {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).context("clock")?.as_secs() + 7200;
        let claims = serde_json::json!({"user_id": user, "sub": user, "exp": exp});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .context("sign a token")
    }

    /// Opens an authenticated socket for `user` (bound to `session` when given) and
    /// reads its greeting; returns the socket and its session id (empty for Centrifugo).
    pub async fn open(&self, user: &str, session: Option<&str>) -> anyhow::Result<(Socket, String)> {
        let token = self.token(user)?;
        let url = match (self.kind, session) {
            (Kind::Centrifugo, _) => self.url.clone(),
            (_, None) => format!("{}?token={token}", self.url),
            (_, Some(session)) => format!("{}?token={token}&session_id={session}", self.url),
        };
        // Small client buffers: ten thousand sockets in this process stay cheap.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (mut socket, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true),
        )
        .await
        .context("the upgrade was not answered in time")?
        .context("the upgrade was refused")?;
        if self.kind == Kind::Centrifugo {
            let connect = serde_json::json!({"id": 1, "connect": {"token": token}});
            socket.send(Message::Text(connect.to_string().into())).await.context("send connect")?;
            let reply = next_text(&mut socket, WAIT).await?;
            if !reply.contains("\"connect\"") {
                bail!("centrifugo refused the connect command: {reply}");
            }
            return Ok((socket, String::new()));
        }
        let first: Frame = serde_json::from_str(&next_text(&mut socket, WAIT).await?).context("greeting")?;
        if first.kind != "connection_status" {
            bail!("the first frame is {:?}, not connection_status", first.kind);
        }
        Ok((socket, first.session_id.unwrap_or_default()))
    }
}

/// The next text frame within `wait`; protocol pings and pongs are skipped.
pub async fn next_text(socket: &mut Socket, wait: Duration) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("no frame in time")?
            .context("the socket ended")?
            .context("the socket failed")?;
        match message {
            Message::Text(text) => return Ok(text.to_string()),
            Message::Close(close) => bail!("the server closed the socket: {close:?}"),
            _ => {}
        }
    }
}

/// Sends one text frame.
pub async fn send_json(socket: &mut Socket, frame: &serde_json::Value) -> anyhow::Result<()> {
    socket.send(Message::Text(frame.to_string().into())).await.context("send a frame")
}

/// The parts of a server frame the tool reads.
#[derive(Debug, Deserialize)]
pub struct Frame {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// Frame metadata (string values on the wire).
#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    pub done: Option<String>,
    pub finish_reason: Option<String>,
}

impl Frame {
    /// Parses a text frame.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        serde_json::from_str(text).with_context(|| format!("not a frame: {text}"))
    }

    /// An answer chunk (not the final `done` frame).
    pub fn is_chunk(&self) -> bool {
        matches!(self.kind.as_str(), "ai_response" | "assistant")
            && self.metadata.done.as_deref() == Some("false")
    }

    /// The final frame of an answer.
    pub fn is_done(&self) -> bool {
        self.metadata.done.as_deref() == Some("true")
    }
}

/// Nanoseconds since the Unix epoch: the clock every process on the machine shares, so
/// the floor server's send times compare with this tool's receive times.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The text of token `index` sent now: `t<nanos>#<index> `.
pub fn marker(index: usize) -> String {
    format!("t{}#{index} ", now_ns())
}

/// Every `(index, sent_ns)` marker in `text`, in order.
pub fn markers(text: &str) -> impl Iterator<Item = (usize, u64)> + '_ {
    text.split_whitespace().filter_map(|word| {
        let (sent, index) = word.strip_prefix('t')?.split_once('#')?;
        Some((index.parse().ok()?, sent.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_skip_other_words() {
        let text = format!("{}{}", marker(0), marker(1));
        let found: Vec<usize> = markers(&text).map(|(index, _)| index).collect();
        assert_eq!(found, vec![0, 1]);
        let parsed: Vec<(usize, u64)> = markers("hello t12#3 tx#1 t5#y t7#4").collect();
        assert_eq!(parsed, vec![(3, 12), (4, 7)]);
    }

    #[test]
    fn frames_tell_chunks_from_the_end() {
        let chunk = Frame::parse(r#"{"type":"ai_response","content":"t1#0 ","metadata":{"done":"false"}}"#)
            .expect("a chunk");
        assert!(chunk.is_chunk() && !chunk.is_done());
        let done = Frame::parse(
            r#"{"type":"ai_response","content":"","metadata":{"done":"true","finish_reason":"stop"}}"#,
        )
        .expect("a done frame");
        assert!(done.is_done() && !done.is_chunk());
    }
}
