//! The floor's provider side (`floor --provider http://host:port/v1`): what a minimal
//! gateway must do to stream an answer and nothing more. A plain HTTP/1.1
//! `POST <path>/chat/completions` over TCP (keep-alive connections kept in a small
//! pool, each with its reused buffers), a tiny chunked-transfer and SSE decoder (events
//! may be split anywhere across reads and chunks) and a borrowed serde parse of each
//! `data: {...}` event. No reqwest, no hyper.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Mutex;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::WAIT;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 4096;

/// What an answer yields, in order: contents, then its end once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// A non-empty `choices[0].delta.content`.
    Content(&'a str),
    /// `[DONE]` (or the end of the body after a finish reason): the finish reason.
    Done(&'a str),
}

/// The provider the floor forwards questions to.
#[derive(Debug)]
pub struct Provider {
    /// The URL as given (announced in the floor's greeting).
    pub url: String,
    address: SocketAddr,
    authority: String,
    /// `<path>/chat/completions`.
    path: String,
    /// Idle keep-alive connections.
    idle: Mutex<Vec<Connection>>,
}

/// One keep-alive connection and its buffers.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    buffers: Buffers,
}

/// The buffers an exchange reuses: raw bytes read, the decoded SSE text not yet split
/// into lines, and the data of the event being read.
#[derive(Debug, Default)]
struct Buffers {
    raw: Vec<u8>,
    body: Vec<u8>,
    data: String,
}

impl Provider {
    /// Parses `http://host[:port][/path]` and resolves its address once.
    pub async fn new(url: &str) -> anyhow::Result<Self> {
        let rest =
            url.strip_prefix("http://").with_context(|| format!("--provider {url:?}: http:// only"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let with_port =
            if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        let address = tokio::net::lookup_host(&with_port)
            .await
            .ok()
            .and_then(|mut found| found.next())
            .with_context(|| format!("--provider {url:?}: cannot resolve {with_port}"))?;
        let prefix = path.trim_matches('/');
        let path = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        Ok(Self {
            url: url.to_owned(),
            address,
            authority: authority.to_owned(),
            path: format!("{path}/chat/completions"),
            idle: Mutex::default(),
        })
    }

    /// Asks `question` and hands every part of the answer to `on`. On an error, `Done`
    /// may not have been handed.
    pub async fn answer(&self, question: &str, mut on: impl FnMut(Part<'_>)) -> anyhow::Result<()> {
        let body = serde_json::json!({"model": "load", "stream": true,
            "messages": [{"role": "user", "content": question}]})
        .to_string();
        let request = format!(
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
            self.path,
            self.authority,
            body.len()
        );
        let pooled = self.idle.lock().expect("pool lock").pop();
        let reused = pooled.is_some();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let mut responded = false;
        let Connection { stream, buffers } = &mut connection;
        if let Err(error) = exchange(stream, buffers, request.as_bytes(), &mut responded, &mut on).await {
            // A kept-alive connection the provider has closed since: once more on a new one.
            if !reused || responded {
                return Err(error);
            }
            connection = self.connect().await?;
            let Connection { stream, buffers } = &mut connection;
            exchange(stream, buffers, request.as_bytes(), &mut responded, &mut on).await?;
        }
        self.idle.lock().expect("pool lock").push(connection);
        Ok(())
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(self.address)
            .await
            .with_context(|| format!("connect to the provider {}", self.url))?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buffers: Buffers::default() })
    }
}

/// Bytes read from the provider, consumed up to `at`.
struct Input<'a, S> {
    stream: &'a mut S,
    raw: &'a mut Vec<u8>,
    at: usize,
    responded: &'a mut bool,
}

impl<S: AsyncRead + Unpin> Input<'_, S> {
    /// Reads more, first dropping what was consumed; fails when the provider closes the
    /// connection or stays silent for [`WAIT`].
    async fn more(&mut self) -> anyhow::Result<()> {
        self.raw.drain(..self.at);
        self.at = 0;
        self.raw.reserve(READ_SIZE);
        let read = tokio::time::timeout(WAIT, self.stream.read_buf(self.raw))
            .await
            .context("the provider sent nothing for 30 s")?;
        if read.context("read from the provider")? == 0 {
            bail!("the provider closed the connection mid-answer");
        }
        *self.responded = true;
        Ok(())
    }

    /// The next line, without its CRLF.
    async fn line(&mut self) -> anyhow::Result<&[u8]> {
        loop {
            if let Some(end) = find(&self.raw[self.at..], b"\r\n") {
                let start = self.at;
                self.at += end + 2;
                return Ok(&self.raw[start..start + end]);
            }
            self.more().await?;
        }
    }

    /// The next `count` bytes.
    async fn bytes(&mut self, count: usize) -> anyhow::Result<&[u8]> {
        while self.raw.len() - self.at < count {
            self.more().await?;
        }
        self.at += count;
        Ok(&self.raw[self.at - count..self.at])
    }
}

/// Sends one request and reads its chunked SSE response to the end, so the connection
/// can carry the next one.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buffers: &mut Buffers,
    request: &[u8],
    responded: &mut bool,
    on: &mut impl FnMut(Part<'_>),
) -> anyhow::Result<()> {
    stream.write_all(request).await.context("write to the provider")?;
    let Buffers { raw, body, data } = buffers;
    raw.clear();
    body.clear();
    data.clear();
    let mut input = Input { stream, raw, at: 0, responded };
    let status = input.line().await?;
    if !status.starts_with(b"HTTP/1.1 200") {
        bail!("the provider answered {:?}", String::from_utf8_lossy(status));
    }
    let mut chunked = false;
    loop {
        let header = input.line().await?;
        if header.is_empty() {
            break;
        }
        let header = String::from_utf8_lossy(header).to_ascii_lowercase();
        chunked |= header.starts_with("transfer-encoding:") && header.contains("chunked");
    }
    if !chunked {
        bail!("the provider's answer is not chunked");
    }
    let mut finish: Option<String> = None;
    let mut done = false;
    loop {
        let line = input.line().await?;
        let size = std::str::from_utf8(line).ok().and_then(|l| l.split(';').next());
        let size = size.and_then(|s| usize::from_str_radix(s.trim(), 16).ok()).context("chunk size")?;
        if size == 0 {
            while !input.line().await?.is_empty() {}
            break;
        }
        body.extend_from_slice(input.bytes(size).await?);
        if input.bytes(2).await? != b"\r\n" {
            bail!("a chunk does not end in CRLF");
        }
        let mut start = 0;
        while let Some(end) = body[start..].iter().position(|&b| b == b'\n') {
            let line = &body[start..start + end];
            start += end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(std::str::from_utf8(value).context("an event is not UTF-8")?);
            } else if line.is_empty() && !data.is_empty() {
                if !done {
                    done = event(data, &mut finish, on)?;
                }
                data.clear();
            }
        }
        body.drain(..start);
    }
    match (done, finish) {
        (true, _) => {}
        (false, Some(reason)) => on(Part::Done(&reason)),
        (false, None) => bail!("the answer ended without [DONE] or a finish reason"),
    }
    Ok(())
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

/// Handles one event's data; true once the answer is done.
fn event(data: &str, finish: &mut Option<String>, on: &mut impl FnMut(Part<'_>)) -> anyhow::Result<bool> {
    if data == "[DONE]" {
        on(Part::Done(finish.as_deref().unwrap_or("stop")));
        return Ok(true);
    }
    let parsed: Event<'_> = serde_json::from_str(data).with_context(|| format!("not an event: {data}"))?;
    let Some(choice) = parsed.choices.into_iter().next() else { return Ok(false) };
    if let Some(content) = choice.delta.and_then(|d| d.content).filter(|c| !c.is_empty()) {
        on(Part::Content(&content));
    }
    if let Some(reason) = choice.finish_reason {
        *finish = Some(reason.into_owned());
    }
    Ok(false)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as the mock writes it, with an event split across two chunks and one
    /// with CRLF line ends.
    fn response(tokens: &[&str]) -> Vec<u8> {
        let mut events: Vec<String> = tokens
            .iter()
            .map(|t| {
                format!(
                    "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{t}\"}},\"finish_reason\":null}}]}}\n\n"
                )
            })
            .collect();
        events.push("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n".into());
        events.push("data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\ndata: [DONE]\n\n".into());
        let whole = events.concat();
        let (first, second) = whole.split_at(whole.len() / 2);
        let mut out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for piece in [first, second] {
            out.extend_from_slice(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[tokio::test]
    async fn decodes_answers_split_byte_by_byte_on_one_connection() {
        // A one-byte pipe: every read returns a single byte.
        let (mut client, mut server) = tokio::io::duplex(1);
        let request = b"POST /v1/chat/completions HTTP/1.1\r\n\r\n{}";
        let served = tokio::spawn(async move {
            for tokens in [&["t1#0 ", "t2#1 "][..], &["t3#0 "][..]] {
                let mut seen = vec![0u8; request.len()];
                server.read_exact(&mut seen).await.expect("request");
                server.write_all(&response(tokens)).await.expect("response");
            }
        });
        let mut buffers = Buffers::default();
        for expected in [vec!["t1#0 ", "t2#1 ", "done stop"], vec!["t3#0 ", "done stop"]] {
            let mut parts = Vec::new();
            let mut on = |part: Part<'_>| {
                parts.push(match part {
                    Part::Content(text) => text.to_owned(),
                    Part::Done(reason) => format!("done {reason}"),
                });
            };
            exchange(&mut client, &mut buffers, request, &mut false, &mut on).await.expect("an answer");
            assert_eq!(parts, expected);
        }
        served.await.expect("server");
    }
}
