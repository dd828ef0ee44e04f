//! The floor: a minimal tokio-tungstenite server with small socket buffers (a 1 KiB read
//! buffer, the gateway's until round 5; no write buffering) and none of its work (no authentication,
//! storage, limits or protocol checks). It greets with `connection_status`, groups
//! sockets by `?session_id=` (a fresh id otherwise), and answers a `user_message` by
//! streaming `loading`, `metadata.tokens` chunks at `metadata.rate` per second (the
//! same timing markers as the mock provider) and a `done` frame to every socket of the
//! group. `idle`, `fanout` and `churn` point at it with `--target floor`: the cost of
//! the stack itself, against which the gateway's is read.
//!
//! With `--provider http://host:port/v1` the floor is instead a minimal streaming proxy
//! (see `floor_proxy`): a `user_message` is posted to the provider (the mock `stream`
//! starts) and every content event becomes one `ai_response` chunk, in the same format,
//! for every socket of the group, then the `done` frame. Its greeting then carries
//! `metadata.provider`, which `stream --target floor` checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::client::marker;
use crate::floor_proxy::{Part, Provider};

/// The sockets of each group, by session id.
type Groups = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Arc<str>>>>>>;

/// Runs the floor server on `127.0.0.1:port` until the process is stopped; answers come
/// from `provider` (a URL) when given, from a timer otherwise.
pub async fn run(port: u16, provider: Option<&str>) -> anyhow::Result<()> {
    let provider = match provider {
        Some(url) => Some(Arc::new(Provider::new(url).await?)),
        None => None,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("bind {port}"))?;
    let address = listener.local_addr().context("address")?;
    let answers = provider.as_ref().map_or("on a timer".to_owned(), |p| format!("from {}", p.url));
    println!("floor listening on ws://{address}/chat/ws (pid {}), answers {answers}", std::process::id());
    let groups: Groups = Arc::default();
    let ids = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        let _ = stream.set_nodelay(true);
        let (groups, ids, provider) = (Arc::clone(&groups), Arc::clone(&ids), provider.clone());
        tokio::spawn(async move {
            let _ = serve(stream, groups, ids, provider).await;
        });
    }
}

/// One socket, from the handshake to its end.
async fn serve(
    stream: TcpStream,
    groups: Groups,
    ids: Arc<AtomicU64>,
    provider: Option<Arc<Provider>>,
) -> anyhow::Result<()> {
    let mut query = String::new();
    let config = WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0);
    // The callback's signature (and its error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        query = request.uri().query().unwrap_or_default().to_owned();
        Ok(response)
    };
    let mut socket = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    let requested = query.split('&').find_map(|pair| pair.strip_prefix("session_id=")).map(str::to_owned);
    let joined = requested.is_some();
    let session = requested.unwrap_or_else(|| format!("floor-{}", ids.fetch_add(1, Ordering::Relaxed)));
    let (sender, mut outbox) = mpsc::unbounded_channel::<Arc<str>>();
    let mut registered = false;
    if joined {
        groups.lock().expect("groups lock").entry(session.clone()).or_default().push(sender.clone());
        registered = true;
    }
    let mut greeting = json!({"type": "connection_status", "sender": "system", "session_id": session,
        "user_id": "floor", "models": [{"id": "floor", "name": "Floor"}], "model_id": "floor",
        "metadata": {"state": "connected"}});
    if let Some(provider) = &provider {
        greeting["metadata"]["provider"] = json!(provider.url);
    }
    socket.send(Message::Text(greeting.to_string().into())).await?;
    loop {
        tokio::select! {
            incoming = socket.next() => {
                let Some(Ok(message)) = incoming else { break };
                let Message::Text(text) = message else { continue };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                match frame["type"].as_str() {
                    Some("ping") => socket.send(Message::Text(r#"{"type":"pong"}"#.into())).await?,
                    Some("user_message") => {
                        if !registered {
                            groups.lock().expect("groups lock").entry(session.clone()).or_default().push(sender.clone());
                            registered = true;
                        }
                        if let Some(provider) = &provider {
                            let question = frame["content"].as_str().unwrap_or_default().to_owned();
                            let groups = Arc::clone(&groups);
                            tokio::spawn(proxy(groups, session.clone(), Arc::clone(provider), question));
                            continue;
                        }
                        let number = |key: &str, default: f64| {
                            let value = &frame["metadata"][key];
                            value.as_f64().or_else(|| value.as_str().and_then(|v| v.parse().ok())).unwrap_or(default)
                        };
                        let (tokens, rate) = (number("tokens", 40.0) as usize, number("rate", 0.0));
                        tokio::spawn(answer(Arc::clone(&groups), session.clone(), tokens, rate));
                    }
                    _ => {}
                }
            }
            outgoing = outbox.recv() => {
                let Some(frame) = outgoing else { break };
                socket.send(Message::Text(frame.as_ref().into())).await?;
            }
        }
    }
    let mut groups = groups.lock().expect("groups lock");
    if let Some(members) = groups.get_mut(&session) {
        members.retain(|member| !member.same_channel(&sender));
        if members.is_empty() {
            groups.remove(&session);
        }
    }
    Ok(())
}

/// Sends one frame, serialised once, to every socket of `session`.
fn deliver(groups: &Groups, session: &str, frame: Arc<str>) {
    if let Some(members) = groups.lock().expect("groups lock").get(session) {
        for member in members {
            let _ = member.send(Arc::clone(&frame));
        }
    }
}

/// The frames of one answer, as the gateway writes them.
fn loading(session: &str) -> Arc<str> {
    Arc::from(json!({"type": "loading", "sender": "ai", "session_id": session}).to_string())
}

/// A chunk, without the maps of `json!` (fields in the order `json!` writes them).
#[derive(serde::Serialize)]
struct Chunk<'a> {
    content: &'a str,
    metadata: Streaming,
    sender: &'static str,
    session_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(serde::Serialize)]
struct Streaming {
    done: &'static str,
    streaming: &'static str,
}

fn chunk(session: &str, content: &str) -> Arc<str> {
    let metadata = Streaming { done: "false", streaming: "true" };
    let frame = Chunk { content, metadata, sender: "ai", session_id: session, kind: "ai_response" };
    Arc::from(serde_json::to_string(&frame).expect("a chunk serialises"))
}

fn done(session: &str, finish_reason: &str, tokens: usize) -> Arc<str> {
    Arc::from(
        json!({"type": "ai_response", "sender": "ai", "session_id": session, "content": "",
            "metadata": {"streaming": "true", "done": "true", "finish_reason": finish_reason,
                "completion_tokens": tokens.to_string()}})
        .to_string(),
    )
}

/// Streams the provider's answer to `question` to every socket of `session`. A failed
/// answer ends with finish reason `error`, which `stream` counts.
async fn proxy(groups: Groups, session: String, provider: Arc<Provider>, question: String) {
    deliver(&groups, &session, loading(&session));
    let (mut tokens, mut finished) = (0usize, false);
    let result = provider
        .answer(&question, |part| match part {
            Part::Content(text) => {
                tokens += 1;
                deliver(&groups, &session, chunk(&session, text));
            }
            Part::Done(reason) => {
                finished = true;
                deliver(&groups, &session, done(&session, reason, tokens));
            }
        })
        .await;
    if let Err(error) = result {
        eprintln!("floor: an answer failed: {error:#}");
        if !finished {
            deliver(&groups, &session, done(&session, "error", tokens));
        }
    }
}

/// Streams one answer to every socket of `session`.
async fn answer(groups: Groups, session: String, tokens: usize, rate: f64) {
    deliver(&groups, &session, loading(&session));
    let mut ticks = (rate > 0.0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
    for index in 0..tokens {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        } else if index % 64 == 63 {
            tokio::task::yield_now().await;
        }
        deliver(&groups, &session, chunk(&session, &marker(index)));
    }
    deliver(&groups, &session, done(&session, "stop", tokens));
}
