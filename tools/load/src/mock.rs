//! The embedded mock model provider: an HTTP/1.1 server on loopback speaking OpenAI's
//! streaming chat completions (`POST /v1/chat/completions`, `stream: true`) as the
//! gateway's `openai` adapter reads them: one SSE event per HTTP chunk,
//! `data: {"choices":[{"delta":{"content":…}}]}`, then the finish reason, the usage and
//! `data: [DONE]`. Each token's text is its send time and index (`t<nanos>#<i> `), so a
//! reader anywhere on the machine knows how late it arrived.
//!
//! The direct reader posts the same request straight to the mock (no gateway): the
//! baseline the gateway's latency is compared with.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{WAIT, marker, now_ns};
use crate::stats::{AnswerTokens, Tally};

/// How every answer is streamed.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Tokens per answer.
    pub tokens: usize,
    /// Tokens per second per answer; 0 streams as fast as the socket takes them.
    pub rate: f64,
}

/// Starts the mock on `127.0.0.1:port` (0: a free port) and returns its address.
pub async fn start(port: u16, pace: Pace) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("bind mock port {port}"))?;
    let address = listener.local_addr().context("mock address")?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = serve(stream, pace).await;
            });
        }
    });
    Ok(address)
}

/// Answers the requests of one keep-alive connection.
async fn serve(stream: TcpStream, pace: Pace) -> anyhow::Result<()> {
    let mut stream = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().context("content-length")?;
            }
        }
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        answer(stream.get_mut(), pace).await?;
    }
}

/// Streams one answer.
async fn answer(stream: &mut TcpStream, pace: Pace) -> anyhow::Result<()> {
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await?;
    let mut ticks = (pace.rate > 0.0).then(|| {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / pace.rate));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    for index in 0..pace.tokens {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let text = marker(index);
        let event = format!(
            "data: {{\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"model\":\"load\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n"
        );
        chunk(stream, event.as_bytes()).await?;
    }
    let closing = format!(
        "data: {{\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"model\":\"load\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: {{\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"model\":\"load\",\"choices\":[],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        pace.tokens,
        pace.tokens + 8
    );
    chunk(stream, closing.as_bytes()).await?;
    stream.write_all(b"0\r\n\r\n").await?;
    Ok(())
}

/// Writes one HTTP chunk.
async fn chunk(stream: &mut TcpStream, bytes: &[u8]) -> anyhow::Result<()> {
    let head = format!("{:x}\r\n", bytes.len());
    let framed = [head.as_bytes(), bytes, b"\r\n"].concat();
    stream.write_all(&framed).await?;
    Ok(())
}
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// Reads answers straight from the mock until `until`, one at a time on one keep-alive
/// connection, parsing each event as the gateway does.
pub async fn direct_reader(
    mock: SocketAddr,
    until: tokio::time::Instant,
    tokens: usize,
) -> anyhow::Result<Tally> {
    let stream = TcpStream::connect(mock).await.context("connect to the mock")?;
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    let mut tally = Tally::default();
    let body = r#"{"model":"load","stream":true,"messages":[{"role":"user","content":"direct"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {mock}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    while tokio::time::Instant::now() < until {
        read_one(&mut stream, &request, tokens, &mut tally).await?;
    }
    Ok(tally)
}

/// A read from the mock, given up after [`WAIT`] of silence.
async fn within<T>(read: impl Future<Output = std::io::Result<T>>) -> anyhow::Result<T> {
    Ok(tokio::time::timeout(WAIT, read).await.context("the mock sent nothing for 30 s")??)
}

/// Asks once on `stream` and reads the answer to its last chunk; each read ends with a
/// failure when the connection closes or stays silent for [`WAIT`].
async fn read_one(
    stream: &mut BufReader<TcpStream>,
    request: &str,
    tokens: usize,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    loop {
        line.clear();
        if within(stream.read_line(&mut line)).await? == 0 {
            bail!("the mock closed the connection");
        }
        if line.trim_end().is_empty() {
            break;
        }
    }
    let mut answer = AnswerTokens::default();
    loop {
        line.clear();
        within(stream.read_line(&mut line)).await?;
        let size = usize::from_str_radix(line.trim_end(), 16).context("chunk size")?;
        let mut data = vec![0u8; size + 2];
        within(stream.read_exact(&mut data)).await?;
        let received = now_ns();
        if size == 0 {
            break;
        }
        let text = std::str::from_utf8(&data[..size]).context("utf-8")?;
        for event in text.split("\n\n") {
            let Some(json) = event.trim().strip_prefix("data: ") else { continue };
            if json == "[DONE]" {
                continue;
            }
            let parsed: Chunk = serde_json::from_str(json).context("event json")?;
            let content = parsed.choices.into_iter().filter_map(|c| c.delta.content).collect::<String>();
            answer.count(&content, received, tally);
        }
    }
    answer.end(tokens, tally);
    Ok(())
}
