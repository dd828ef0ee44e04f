//! `stream`: C clients of the gateway each ask one question at a time and read the
//! answer, streamed by the embedded mock provider at R tokens per second; in the same
//! run C direct readers of the mock (no gateway) give the baseline. Every token carries
//! its send time, so each chunk's latency is measured where it is received; the
//! difference of the two distributions is what the gateway adds.
//!
//! `--target floor` runs the same scenario against `chatbox-load floor --provider
//! http://127.0.0.1:<mock-port>/v1`, a bare streaming proxy of the same mock: the same
//! question frames, measures and JSON keys (`gateway` then names the floor's clients),
//! so its CPU per token and added latency compare directly. A floor that does not stream
//! from this run's mock (no `--provider`, or another port) is refused before the run
//! from its greeting's `metadata.provider`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::time::Instant as Deadline;

use crate::args::Args;
use crate::client::{Frame, Kind, Socket, Target, WAIT, next_text, now_ns, send_json};
use crate::mock::{self, Pace};
use crate::procfs::{Cpu, cores, rss_kib};
use crate::stats::{self, AnswerTokens, Tally, summary};

/// Flags of `stream`.
pub const FLAGS: &[&str] = &[
    "target",
    "url",
    "secret",
    "pid",
    "concurrency",
    "tokens",
    "rate",
    "duration",
    "mock-port",
    "direct",
    "out",
];

/// Runs `stream`.
pub async fn run(args: &Args) -> anyhow::Result<Value> {
    args.check(FLAGS)?;
    let target = Target::from_args(args)?;
    if target.kind == Kind::Centrifugo {
        bail!("stream drives the gateway or the floor only (--target chatbox|floor)");
    }
    let pid: u32 = args.required("pid")?;
    let concurrency: usize = args.sized("concurrency", 100, 10)?;
    let direct: usize = args.get("direct", concurrency)?;
    let pace = Pace { tokens: args.get("tokens", 40)?, rate: args.get("rate", 20.0)? };
    let duration = Duration::from_secs_f64(args.sized("duration", 30.0, 5.0)?);
    let mock_port = args.get("mock-port", crate::DEFAULT_MOCK_PORT)?;
    let mock = mock::start(mock_port, pace).await?;
    if target.kind == Kind::Floor {
        check_floor(&target.url, mock.port()).await?;
    }
    let run = crate::run_id();
    let sockets = crate::idle::open_all(&target, &format!("stream-{run}"), concurrency, 32).await?;
    let who = if target.kind == Kind::Floor { "floor" } else { "gateway" };
    println!(
        "{concurrency} {who} clients and {direct} direct readers, {} tokens at {} /s, {duration:?}",
        pace.tokens, pace.rate
    );

    let rss_connected = rss_kib(pid)?;
    let (server_before, self_before, started) = (Cpu::of(Some(pid))?, Cpu::of(None)?, Instant::now());
    let until = Deadline::now() + duration;
    // The server's resident set while the answers stream, sampled. Its highest reading
    // during the first answer (a session and a streaming answer for every client), less
    // the reading with the same sockets connected and idle, is what a streaming answer
    // costs; over the whole run it also holds the conversations stored meanwhile (with
    // the memory store, in the process).
    let first_answer_ends =
        Deadline::now() + Duration::from_secs_f64(pace.tokens as f64 / pace.rate.max(1.0));
    let rss_sampler = tokio::spawn(async move {
        let (mut first_answer, mut whole_run) = (rss_connected, rss_connected);
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        while Deadline::now() < until {
            ticks.tick().await;
            let rss = rss_kib(pid).unwrap_or(0);
            whole_run = whole_run.max(rss);
            if Deadline::now() <= first_answer_ends {
                first_answer = first_answer.max(rss);
            }
        }
        (first_answer, whole_run)
    });
    // Starts are spread over one token interval so the ticks do not all fall together.
    let spread = if pace.rate > 0.0 { 1.0 / pace.rate } else { 0.0 };
    let stagger = |i: usize, n: usize| Duration::from_secs_f64(spread * i as f64 / n.max(1) as f64);
    let mut gateway_tasks = Vec::with_capacity(concurrency);
    for (i, socket) in sockets.into_iter().enumerate() {
        let delay = stagger(i, concurrency);
        gateway_tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            client(socket, until, pace.tokens).await
        }));
    }
    let mut direct_tasks = Vec::with_capacity(direct);
    for i in 0..direct {
        let delay = stagger(i, direct);
        direct_tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            mock::direct_reader(mock, until, pace.tokens).await
        }));
    }
    let mut gateway = Tally::default();
    for task in gateway_tasks {
        gateway.merge(&task.await.context("a client task panicked")??);
    }
    let mut baseline = Tally::default();
    for task in direct_tasks {
        baseline.merge(&task.await.context("a direct reader panicked")??);
    }
    let (rss_first_answer, rss_streaming) = rss_sampler.await.context("the memory sampler panicked")?;
    let per_client = |rss: u64| rss.saturating_sub(rss_connected) as f64 / concurrency.max(1) as f64;
    let per_answer_kib = per_client(rss_first_answer);
    let wall = started.elapsed().as_secs_f64();
    let server = Cpu::of(Some(pid))?.since(server_before);
    let own = Cpu::of(None)?.since(self_before);

    let per_token_us = server.total().as_secs_f64() * 1e6 / gateway.tokens.max(1) as f64;
    let own_share = own.total().as_secs_f64() / wall;
    let results = json!({
        "subcommand": "stream",
        "target": target.kind,
        "concurrency": concurrency,
        "direct_readers": direct,
        "tokens_per_answer": pace.tokens,
        "rate_per_answer": pace.rate,
        "duration_s": stats::round(wall),
        "answers": gateway.answers,
        "tokens_delivered": gateway.tokens,
        "frames_per_s": stats::round(gateway.frames as f64 / wall),
        "tokens_lost": gateway.lost,
        "tokens_out_of_order": gateway.out_of_order,
        "error_frames": gateway.errors,
        "gateway": {"all": summary(&gateway.latencies.all), "steady": summary(&gateway.latencies.steady)},
        "direct": {"all": summary(&baseline.latencies.all), "steady": summary(&baseline.latencies.steady),
            "answers": baseline.answers, "tokens": baseline.tokens, "tokens_lost": baseline.lost,
            "tokens_out_of_order": baseline.out_of_order},
        "added": {"all": stats::added(&gateway.latencies.all, &baseline.latencies.all),
            "steady": stats::added(&gateway.latencies.steady, &baseline.latencies.steady)},
        "server_cpu": {"user_s": server.user.as_secs_f64(), "system_s": server.system.as_secs_f64(),
            "us_per_token": stats::round(per_token_us)},
        "server_rss_kib": {"connected": rss_connected, "first_answer_highest": rss_first_answer,
            "per_streaming_answer": stats::round(per_answer_kib), "whole_run_highest": rss_streaming,
            "per_client_whole_run": stats::round(per_client(rss_streaming))},
        "tool_cpu": {"seconds": own.total().as_secs_f64(), "share_of_one_core": stats::round(own_share),
            "share_of_machine": stats::round(own_share / cores() as f64)},
    });
    println!("{}", stats::line(&format!("{who}, all tokens"), &results["gateway"]["all"]));
    println!("{}", stats::line(&format!("{who}, steady"), &results["gateway"]["steady"]));
    println!("{}", stats::line("direct, all tokens", &results["direct"]["all"]));
    println!("{}", stats::line("direct, steady", &results["direct"]["steady"]));
    println!("{who} adds (steady): {}", results["added"]["steady"]);
    println!(
        "{} answers, {} tokens, {} frames/s, server CPU {per_token_us:.2} µs per token ({:.2} s user, {:.2} s system), lost {}, out of order {}, error frames {}, tool CPU {:.0} % of a core",
        gateway.answers,
        gateway.tokens,
        results["frames_per_s"],
        server.user.as_secs_f64(),
        server.system.as_secs_f64(),
        gateway.lost,
        gateway.out_of_order,
        gateway.errors,
        own_share * 100.0
    );
    println!(
        "server RSS {rss_connected} KiB connected, at most {rss_first_answer} KiB during the first answers: {per_answer_kib:.2} KiB per streaming answer ({:.2} KiB per client over the run, stored conversations included)",
        per_client(rss_streaming)
    );
    Ok(results)
}

/// Fails unless the floor at `url` streams from the mock on `mock_port`: its greeting
/// names its provider only when it was started with `--provider`.
async fn check_floor(url: &str, mock_port: u16) -> anyhow::Result<()> {
    let (mut socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .context("the floor did not answer the upgrade in time")?
        .with_context(|| format!("connect to the floor at {url}"))?;
    let greeting: Value = serde_json::from_str(&next_text(&mut socket, WAIT).await?).context("greeting")?;
    let _ = socket.close(None).await;
    let start = format!("start it as `chatbox-load floor --provider http://127.0.0.1:{mock_port}/v1`");
    let Some(provider) = greeting["metadata"]["provider"].as_str() else {
        bail!("the floor at {url} answers from its own timer, not from a provider: {start}");
    };
    let authority = provider.strip_prefix("http://").and_then(|rest| rest.split('/').next());
    let port = authority.and_then(|a| a.rsplit_once(':')).and_then(|(_, port)| port.parse::<u16>().ok());
    if port != Some(mock_port) {
        bail!(
            "the floor at {url} streams from {provider}, not from this run's mock (port {mock_port}): {start}"
        );
    }
    Ok(())
}

/// One client of the gateway (or floor): a question at a time until `until`.
async fn client(mut socket: Socket, until: Deadline, tokens: usize) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut n = 0u64;
    while Deadline::now() < until {
        n += 1;
        send_json(&mut socket, &json!({"type": "user_message", "content": format!("question {n}")})).await?;
        read_answer(&mut socket, &mut tally, tokens).await?;
    }
    Ok(tally)
}

/// Reads one answer to its `done` frame, counting chunks, latencies, gaps and disorder.
pub async fn read_answer(socket: &mut Socket, tally: &mut Tally, tokens: usize) -> anyhow::Result<()> {
    let mut answer = AnswerTokens::default();
    loop {
        let text = next_text(socket, WAIT).await?;
        let received = now_ns();
        let frame = Frame::parse(&text)?;
        if frame.kind == "error" {
            tally.errors += 1;
            continue;
        }
        if frame.is_chunk() {
            tally.frames += 1;
            answer.count(&frame.content, received, tally);
        } else if frame.is_done() {
            if frame.metadata.finish_reason.as_deref() != Some("stop") {
                tally.errors += 1;
            }
            answer.end(tokens, tally);
            return Ok(());
        }
    }
}
