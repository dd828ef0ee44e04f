//! `idle`: the server memory an idle socket costs. Opens N authenticated sockets (each
//! its own user), reads the server's resident set after they connected and again after
//! each asked one question and read its whole answer (so each holds a session of its
//! own), then closes them all and reads it 2 s and 5 s later.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::args::Args;
use crate::client::{Frame, Kind, Socket, Target, WAIT, next_text, send_json};
use crate::procfs::rss_kib;
use crate::stats;

/// Sockets opened before the baseline reading, to warm the allocator and runtime.
const WARM_UP: usize = 100;

/// Flags of `idle`.
pub const FLAGS: &[&str] =
    &["target", "url", "secret", "pid", "sockets", "open-concurrency", "mock-port", "out"];

/// Runs `idle`.
pub async fn run(args: &Args) -> anyhow::Result<Value> {
    args.check(FLAGS)?;
    let target = Target::from_args(args)?;
    let pid: u32 = args.required("pid")?;
    // Quick runs hold 1,000 sockets: with 200, a few pages more or less of the server's
    // resident set moved the per-socket figure by a tenth.
    let sockets: usize = args.sized("sockets", 2000, 1000)?;
    let concurrency: usize = args.get("open-concurrency", 32)?;
    let with_session = !args.flag("no-session") && target.kind != Kind::Centrifugo;
    if with_session && target.kind == Kind::Chatbox {
        let port = args.get("mock-port", crate::DEFAULT_MOCK_PORT)?;
        crate::mock::start(port, crate::mock::Pace { tokens: 1, rate: 0.0 }).await?;
    }
    let run = crate::run_id();
    let started = Instant::now();
    let rss_start = rss_kib(pid)?;

    let mut warm = open_all(&target, &format!("idle-warm-{run}"), WARM_UP, concurrency).await?;
    if with_session {
        ask_all(&mut warm, target.kind, concurrency).await?;
    }
    settle(&mut warm, target.kind).await?;
    let baseline = rss_kib(pid)?;

    let mut held = open_all(&target, &format!("idle-{run}"), sockets, concurrency).await?;
    settle(&mut held, target.kind).await?;
    let connected = rss_kib(pid)?;
    let opened_in = started.elapsed();
    let per_connected = (connected as f64 - baseline as f64) / sockets as f64;
    println!(
        "{sockets} sockets connected: server RSS {baseline} -> {connected} KiB, {per_connected:.2} KiB per socket"
    );
    let mut with_sessions = None;
    if with_session {
        ask_all(&mut held, target.kind, concurrency).await?;
        settle(&mut held, target.kind).await?;
        let rss = rss_kib(pid)?;
        let per = (rss as f64 - baseline as f64) / sockets as f64;
        println!("… each with a session and one answer: RSS {rss} KiB, {per:.2} KiB per socket");
        with_sessions = Some((rss, per));
    }

    drop(held);
    drop(warm);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_2s = rss_kib(pid)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_5s = rss_kib(pid)?;
    println!("closed all: RSS {after_2s} KiB after 2 s, {after_5s} KiB after 5 s (start {rss_start} KiB)");
    Ok(json!({
        "subcommand": "idle",
        "target": target.kind,
        "sockets": sockets,
        "warm_up_sockets": WARM_UP,
        "with_session": with_session,
        "rss_kib": {"start": rss_start, "baseline": baseline, "connected": connected,
            "with_session": with_sessions.map(|(rss, _)| rss), "closed_2s": after_2s, "closed_5s": after_5s},
        "kib_per_socket": stats::round(with_sessions.map_or(per_connected, |(_, per)| per)),
        "kib_per_socket_connected": stats::round(per_connected),
        "kib_per_socket_with_session": with_sessions.map(|(_, per)| stats::round(per)),
        "open_seconds": stats::round(opened_in.as_secs_f64()),
    }))
}

/// Opens `count` sockets, user `{prefix}-{i}` each, `concurrency` handshakes at a time.
pub async fn open_all(
    target: &Target,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Socket>> {
    let opened: Vec<anyhow::Result<Socket>> = futures::stream::iter(0..count)
        .map(|i| async move { target.open(&format!("{prefix}-{i}"), None).await.map(|(socket, _)| socket) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    opened.into_iter().collect::<anyhow::Result<Vec<_>>>().context("open the sockets")
}

/// Every socket asks one question and reads its answer to the end.
async fn ask_all(sockets: &mut [Socket], kind: Kind, concurrency: usize) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(sockets.iter_mut())
        .map(|socket| async move {
            let mut question = json!({"type": "user_message", "content": "hello"});
            if kind == Kind::Floor {
                question["metadata"] = json!({"tokens": 1});
            }
            send_json(socket, &question).await?;
            loop {
                let frame = Frame::parse(&next_text(socket, WAIT).await?)?;
                if frame.kind == "error" {
                    anyhow::bail!("the server answered an error: {frame:?}");
                }
                if frame.is_done() {
                    return Ok(());
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

/// A round trip on the newest socket: the server has handled everything sent before.
/// Centrifugo's protocol has no such frame here; it gets a pause instead.
async fn settle(sockets: &mut [Socket], kind: Kind) -> anyhow::Result<()> {
    if kind == Kind::Centrifugo {
        tokio::time::sleep(Duration::from_secs(1)).await;
        return Ok(());
    }
    let last = sockets.last_mut().context("no socket")?;
    send_json(last, &json!({"type": "ping"})).await?;
    loop {
        if Frame::parse(&next_text(last, WAIT).await?)?.kind == "pong" {
            return Ok(());
        }
    }
}
