//! `fanout`: one session watched by K sockets of the same user (the first creates the
//! session with a question, the others join with `?session_id=`). The first socket asks,
//! every socket reads the whole answer, and the next question waits for all of them;
//! reports the chunk frames per second delivered over all sockets.
//!
//! With `--url a,b,…` (replicas of one service sharing a hub) socket *i* connects to
//! replica *i mod N*; the asker is on the first, so every other replica's sockets read
//! chunks that crossed the hub, and their latency is reported apart. `--pid p,q,…` sums
//! the replicas' CPU time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::time::Instant as Deadline;

use crate::args::Args;
use crate::client::{Kind, Socket, Target, send_json};
use crate::mock::{self, Pace};
use crate::procfs::Cpu;
use crate::stats::{self, Tally, summary};
use crate::stream::read_answer;

/// Flags of `fanout`.
pub const FLAGS: &[&str] =
    &["target", "url", "secret", "pid", "watchers", "tokens", "rate", "duration", "mock-port", "out"];

/// Runs `fanout`.
pub async fn run(args: &Args) -> anyhow::Result<Value> {
    args.check(FLAGS)?;
    let replicas = Target::replicas_from_args(args)?;
    let target = &replicas[0];
    let pids: Vec<u32> = match args.text("pid") {
        None => Vec::new(),
        Some(list) => {
            list.split(',').map(|pid| pid.trim().parse()).collect::<Result<_, _>>().context("--pid")?
        }
    };
    let watchers: usize = args.sized("watchers", 100, 10)?;
    let pace = Pace { tokens: args.get("tokens", 40)?, rate: args.get("rate", 0.0)? };
    let duration = Duration::from_secs_f64(args.sized("duration", 20.0, 3.0)?);
    if target.kind == Kind::Chatbox {
        mock::start(args.get("mock-port", crate::DEFAULT_MOCK_PORT)?, pace).await?;
    }
    let user = format!("fanout-{}", crate::run_id());
    let (mut first, session) = target.open(&user, None).await?;
    // The session exists once a first message is stored.
    send_json(&mut first, &question(target.kind, pace, 0)).await?;
    read_answer(&mut first, &mut Tally::default(), pace.tokens).await?;
    let mut sockets = vec![first];
    for i in 1..watchers {
        sockets.push(replicas[i % replicas.len()].open(&user, Some(&session)).await?.0);
    }
    println!(
        "{watchers} sockets on session {session} over {} replica(s), answers of {} tokens at rate {}",
        replicas.len(),
        pace.tokens,
        pace.rate
    );

    let server_before = if pids.is_empty() { None } else { Some(Cpu::of_all(&pids)?) };
    let own_before = Cpu::of(None)?;
    let started = Instant::now();
    let until = Deadline::now() + duration;
    let (end, done) = (Arc::new(Barrier::new(watchers)), Arc::new(Barrier::new(watchers)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(watchers);
    for (i, socket) in sockets.into_iter().enumerate() {
        let (end, done, stop) = (Arc::clone(&end), Arc::clone(&done), Arc::clone(&stop));
        let kind = target.kind;
        tasks.push(tokio::spawn(
            async move { watch(socket, i == 0, kind, pace, until, (end, done, stop)).await },
        ));
    }
    // Sockets on the asker's replica, and on the others (chunks that crossed the hub).
    let (mut tally, mut across) = (Tally::default(), Tally::default());
    for (i, task) in tasks.into_iter().enumerate() {
        let watched = task.await.context("a watcher panicked")??;
        if i % replicas.len() != 0 {
            across.merge(&watched);
        }
        tally.merge(&watched);
    }
    let wall = started.elapsed().as_secs_f64();
    let server = server_before.map(|before| Cpu::of_all(&pids).map(|now| now.since(before))).transpose()?;
    let per_token =
        server.map(|cpu| stats::round(cpu.total().as_secs_f64() * 1e6 / tally.tokens.max(1) as f64));
    let results = json!({
        "subcommand": "fanout",
        "target": target.kind,
        "watchers": watchers,
        "replicas": replicas.len(),
        "tokens_per_answer": pace.tokens,
        "rate_per_answer": pace.rate,
        "duration_s": stats::round(wall),
        "answers": tally.answers / watchers as u64,
        "frames_delivered": tally.frames,
        "frames_per_s": stats::round(tally.frames as f64 / wall),
        "tokens_lost": tally.lost,
        "tokens_out_of_order": tally.out_of_order,
        "latency": {"all": summary(&tally.latencies.all), "steady": summary(&tally.latencies.steady)},
        "latency_on_other_replicas": (replicas.len() > 1).then(|| json!({
            "frames": across.frames,
            "all": summary(&across.latencies.all),
            "steady": summary(&across.latencies.steady),
        })),
        "server_cpu_us_per_frame": per_token,
        "tool_cpu_share_of_one_core": stats::round(Cpu::of(None)?.since(own_before).total().as_secs_f64() / wall),
    });
    println!(
        "{} answers to {watchers} sockets: {} chunk frames, {} frames/s delivered, lost {}, out of order {}, server CPU per frame {} µs",
        results["answers"],
        tally.frames,
        results["frames_per_s"],
        tally.lost,
        tally.out_of_order,
        results["server_cpu_us_per_frame"]
    );
    println!("{}", stats::line("send → receive", &results["latency"]["all"]));
    if replicas.len() > 1 {
        let across = &results["latency_on_other_replicas"]["all"];
        println!("{}", stats::line("send → receive, other replicas", across));
    }
    Ok(results)
}

/// The question frame (the floor reads the answer's size from its metadata).
fn question(kind: Kind, pace: Pace, n: u64) -> Value {
    let mut frame = json!({"type": "user_message", "content": format!("fan-out question {n}")});
    if kind == Kind::Floor {
        frame["metadata"] = json!({"tokens": pace.tokens, "rate": pace.rate});
    }
    frame
}

/// One watcher: reads every answer; the asker also asks, and decides when to stop.
async fn watch(
    mut socket: Socket,
    asker: bool,
    kind: Kind,
    pace: Pace,
    until: Deadline,
    (end, done, stop): (Arc<Barrier>, Arc<Barrier>, Arc<AtomicBool>),
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut n = 0;
    loop {
        n += 1;
        if asker {
            send_json(&mut socket, &question(kind, pace, n)).await?;
        }
        read_answer(&mut socket, &mut tally, pace.tokens).await?;
        end.wait().await;
        if asker && Deadline::now() >= until {
            stop.store(true, Ordering::SeqCst);
        }
        done.wait().await;
        if stop.load(Ordering::SeqCst) {
            return Ok(tally);
        }
    }
}
