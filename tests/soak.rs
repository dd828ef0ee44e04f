//! Bounded memory: churn the server (in-process, port 0) with thousands of sockets,
//! sessions and limiter keys under short TTLs, let the cleanup tasks run, and check that
//! every in-memory map returns to its baseline and the resident set returns near its
//! own.
//!
//! One round of churn, over real WebSockets, all three at once:
//! - sockets opened and closed by a few users, `CONCURRENCY` at a time (connection gate,
//!   socket directory, socket tasks);
//! - a burst of users new to the server, all connected at once (every map peaks at about
//!   `BURST`): each sends one message; a quarter start a conversation and read its whole
//!   answer (live sessions, session actors, the memory store), the rest name an unknown
//!   model, which the message limiter counts before the message is refused; then all
//!   leave together;
//! - answers left unattended: a slow answer whose socket drops after the first chunk, so
//!   the answer is cut at `RECONNECT_TIMEOUT` and its session evicted after `SESSION_TTL`.
//!
//! Two warm-up rounds run first, so the baseline includes what the allocator keeps and
//! the memory store is at its bound (`MEMORY_STORE_MAX_SESSIONS`: the one map that is
//! meant to stay full, bounded, not empty). The bound is above one round's sessions, so
//! the maps measure churn (a session dropped from the store while its answer runs is the
//! last test's subject). Then measured rounds; after each, the test waits
//! (observing the report, with a deadline) for the maps to return to the baseline, and
//! compares the resident set (VmRSS of this process: server and clients) with the
//! baseline's. See `docs/benchmarks.md` for the numbers and the tolerance.
//!
//! Short by default (CI). `CHATBOX_SOAK_SECONDS=600` repeats rounds for ten minutes:
//! `CHATBOX_SOAK_SECONDS=600 cargo test --release --test soak -- --nocapture`.

#[path = "support/jwt.rs"]
mod jwt;
#[path = "support/ws.rs"]
mod ws;

use std::time::Duration;

use chatbox::Application;
use chatbox::config;
use chatbox::memory_report::{MemoryProbe, MemoryReport};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "soak-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5hGcDaQ";
/// The memory store's bound: above one round's sessions (so the sessions it drops are
/// always those of earlier rounds, long finished and stored) and below two rounds', so
/// the two warm-up rounds fill it.
const STORE_CAP: usize = 250;
/// Rounds before the baseline is measured.
const WARM_UP_ROUNDS: usize = 2;
/// Clients at a time.
const CONCURRENCY: usize = 16;
/// Sockets opened and closed one after the other per round, and the users they belong to.
const SOCKETS: usize = 600;
const SOCKET_USERS: usize = 8;
/// New users per round connected at once, each through the gate and the limiter.
const BURST: usize = 600;
/// Of those, how many start a conversation (a new session answered to the end).
const CONVERSATIONS: usize = 150;
/// Answers left unattended per round.
const UNATTENDED: usize = 20;
/// Measured rounds in the short version.
const SHORT_ROUNDS: usize = 2;
/// How long the maps may take to return to the baseline after a round: the limiter's
/// 2 s and many runs of each cleanup task (100 ms), with room for a busy machine.
const SETTLE: Duration = Duration::from_secs(20);
/// How far above the baseline the resident set may end after a round, in KiB (short
/// version): see `docs/benchmarks.md`.
const RSS_TOLERANCE_KIB: u64 = 2 * 1024;
/// The same in the long version, where the allocator's fragmentation creeps up to about
/// 2 MiB before it levels off (measured over 119 rounds).
const LONG_RSS_TOLERANCE_KIB: u64 = 4 * 1024;
/// Long version: how much the mean after-cleanup RSS of the last quarter of the rounds
/// may exceed that of the second quarter. Fragmentation levels off; a leak keeps
/// climbing (30 bytes a socket is about 1.7 MiB over 50 rounds).
const LONG_RSS_TREND_KIB: u64 = 1024;
/// How often the peaks are sampled during a round.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The tests of this binary run one at a time: the resident set is the process's, so a
/// second server running alongside would blur the soak's numbers.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn token(user: &str) -> String {
    jwt::user_token(user, SECRET)
}

/// `VmRSS` and `VmHWM` (the peak) of this process, in KiB.
fn resident_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Soak {
    url_base: String,
    probe: MemoryProbe,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Soak {
    async fn start() -> Self {
        let cap = STORE_CAP.to_string();
        let vars: Vec<(&str, &str)> = vec![
            ("SERVER_HOST", "127.0.0.1"),
            ("SERVER_PORT", "0"),
            ("JWT_SECRET", SECRET),
            ("LLM_PROVIDER_1_ID", "quick"),
            ("LLM_PROVIDER_1_TYPE", "demo"),
            ("LLM_PROVIDER_1_DELAY", "0ms"),
            // About 45 words: ~1 s, cut after RECONNECT_TIMEOUT when nobody watches.
            ("LLM_PROVIDER_2_ID", "slow"),
            ("LLM_PROVIDER_2_TYPE", "demo"),
            ("LLM_PROVIDER_2_DELAY", "20ms"),
            ("SESSION_TTL", "300ms"),
            ("SESSION_CLEANUP_INTERVAL", "100ms"),
            ("RECONNECT_TIMEOUT", "300ms"),
            ("RATE_LIMIT_CLEANUP_INTERVAL", "100ms"),
            // Each user sends one message a round; its key is kept for 2 s (the burst's
            // keys are all there at its peak), then the cleanup forgets it.
            ("RATE_LIMIT", "1"),
            ("RATE_WINDOW", "2s"),
            ("MAX_CONNECTIONS_PER_USER", "1000"),
            ("MEMORY_STORE_MAX_SESSIONS", cap.as_str()),
            ("SHUTDOWN_TIMEOUT", "5s"),
        ];
        Self::start_with(&vars).await
    }

    /// The server in-process with `vars`, serving until [`Self::stop`].
    async fn start_with(vars: &[(&str, &str)]) -> Self {
        let settings = config::load_from(vars, false).settings.expect("valid soak configuration");
        let app = Application::build(settings).await.expect("build");
        let url_base = format!("ws://{}/chat/ws", app.address());
        let probe = app.memory_probe();
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        let server = tokio::spawn(async move { app.run_until(signal.cancelled_owned()).await });
        Self { url_base, probe, shutdown, server }
    }

    fn url(&self, user: &str) -> String {
        format!("{}?token={}", self.url_base, token(user))
    }

    /// Opens a socket for `user` and reads its `connection_status`.
    async fn open(&self, user: &str) -> ws::Socket {
        // Small client buffers (the default read buffer is 128 KiB), so the resident set
        // follows the server's state rather than the test's own sockets.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let opening = tokio_tungstenite::connect_async_with_config(self.url(user), Some(config), false);
        let (mut socket, _) = tokio::time::timeout(ws::WAIT, opening)
            .await
            .expect("the upgrade was answered in time")
            .expect("the upgrade is accepted");
        let status = ws::next_json(&mut socket, ws::deadline_in(ws::WAIT)).await;
        assert_eq!(status["type"], "connection_status", "{status}");
        socket
    }

    /// Closes from the client side and reads until the server's close answer.
    async fn close(mut socket: ws::Socket) {
        socket.close(None).await.expect("send close");
        let _ = ws::until_closed(&mut socket, ws::deadline_in(ws::WAIT)).await;
    }

    async fn send(socket: &mut ws::Socket, content: &str, model: &str) {
        let frame = json!({"type": "user_message", "content": content, "model_id": model});
        socket.send(Message::Text(frame.to_string().into())).await.expect("send");
    }

    /// One round of churn; `round` keeps the user ids of the burst and of the unattended
    /// answers new every round.
    async fn churn(&self, round: usize) {
        let sockets = futures::stream::iter(0..SOCKETS).for_each_concurrent(CONCURRENCY, |i| async move {
            let socket = self.open(&format!("soak-socket-{}", i % SOCKET_USERS)).await;
            Self::close(socket).await;
        });
        let unattended =
            futures::stream::iter(0..UNATTENDED).for_each_concurrent(CONCURRENCY / 4, |i| async move {
                let mut socket = self.open(&format!("soak-away-{round}-{i}")).await;
                Self::send(&mut socket, "a long answer nobody reads", "slow").await;
                ws::frames_until(&mut socket, ws::deadline_in(ws::WAIT), |f| {
                    f["metadata"]["done"] == "false"
                })
                .await;
                // Gone without a close frame: the connection just ends.
                drop(socket);
            });
        tokio::join!(sockets, unattended, self.burst(round));
    }

    /// `BURST` new users connect and stay connected; then each sends one message at
    /// once (the first `CONVERSATIONS` start a session and read its whole answer, the
    /// others name an unknown model: counted by the limiter, refused before any session
    /// exists); then all leave together. Every map peaks at about `BURST`.
    async fn burst(&self, round: usize) {
        let mut held: Vec<(usize, ws::Socket)> = futures::stream::iter(0..BURST)
            .map(|i| async move { (i, self.open(&format!("soak-burst-{round}-{i}")).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        futures::future::join_all(held.iter_mut().map(|(i, socket)| async move {
            if *i < CONVERSATIONS {
                Self::send(socket, &format!("question {i} of round {round}"), "quick").await;
                let frames = ws::frames_until(socket, ws::deadline_in(ws::WAIT), ws::is_done).await;
                let done = frames.last().expect("done");
                assert_eq!(done["metadata"]["finish_reason"], "stop", "{done}");
            } else {
                Self::send(socket, "hello", "no-such-model").await;
                let refused = ws::next_json(socket, ws::deadline_in(ws::WAIT)).await;
                assert_eq!(refused["error"]["code"], "INVALID_FORMAT", "{refused}");
            }
        }))
        .await;
        futures::stream::iter(held)
            .for_each_concurrent(CONCURRENCY * 4, |(_, socket)| Self::close(socket))
            .await;
    }

    /// Waits (observing the report, with a deadline) until it equals `expected`.
    async fn settle(&self, expected: &MemoryReport) -> Duration {
        let started = Instant::now();
        let deadline = started + SETTLE;
        loop {
            let report = self.probe.report();
            if &report == expected {
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "the in-memory state did not return to its baseline within {SETTLE:?}:\n now {report:?}\n want {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs one round of churn while sampling the report and the resident set; returns
    /// the largest value seen of each.
    async fn sampled_churn(&self, round: usize) -> (MemoryReport, u64) {
        let stop = CancellationToken::new();
        let sampler = {
            let probe = self.probe.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut peak = probe.report();
                let mut rss = resident_kib().0;
                while !stop.is_cancelled() {
                    peak = larger(&peak, &probe.report());
                    rss = rss.max(resident_kib().0);
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(SAMPLE_EVERY) => {}
                    }
                }
                (peak, rss)
            })
        };
        self.churn(round).await;
        stop.cancel();
        sampler.await.expect("the sampler ran")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.server)
            .await
            .expect("stops in time")
            .expect("join")
            .expect("clean");
    }
}

/// The larger of each figure.
fn larger(a: &MemoryReport, b: &MemoryReport) -> MemoryReport {
    MemoryReport {
        live_sessions: a.live_sessions.max(b.live_sessions),
        rate_limiter_keys: a.rate_limiter_keys.max(b.rate_limiter_keys),
        connections: a.connections.max(b.connections),
        connection_users: a.connection_users.max(b.connection_users),
        socket_directory_users: a.socket_directory_users.max(b.socket_directory_users),
        stored_sessions: a.stored_sessions.max(b.stored_sessions),
        tasks: a.tasks.max(b.tasks),
    }
}

/// The churn reached every map: a round that left one of them empty would prove nothing
/// about its cleanup.
fn assert_exercised(peak: &MemoryReport) {
    assert!(peak.live_sessions >= CONVERSATIONS, "{peak:?}");
    assert!(peak.rate_limiter_keys >= BURST / 2, "{peak:?}");
    assert!(peak.connections >= BURST && peak.connection_users >= BURST, "{peak:?}");
    assert!(peak.socket_directory_users >= BURST, "{peak:?}");
    assert!(peak.tasks >= BURST + CONVERSATIONS, "sockets and session actors: {peak:?}");
}

/// Raises the open-file limit up to the hard limit: the burst holds `BURST` sockets, and
/// both ends are in this process.
fn raise_open_file_limit() {
    let needed = 2 * (BURST + CONCURRENCY * 6) as u64 + 200;
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("read and raise RLIMIT_NOFILE");
    assert!(limit >= needed, "the soak needs {needed} open files; the hard limit is {limit}");
}

/// What the service holds at rest: nothing keyed by user, session or socket; the memory
/// store at its bound; the three cleanup loops (sessions, limiters, uploaded files).
const AT_REST: MemoryReport = MemoryReport {
    live_sessions: 0,
    rate_limiter_keys: 0,
    connections: 0,
    connection_users: 0,
    socket_directory_users: 0,
    stored_sessions: Some(STORE_CAP),
    tasks: 3,
};

fn soak_seconds() -> Option<u64> {
    std::env::var("CHATBOX_SOAK_SECONDS").ok().map(|v| v.parse().expect("CHATBOX_SOAK_SECONDS is a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_every_map_at_its_baseline_and_the_resident_set_near_its_own() {
    let _alone = ONE_AT_A_TIME.lock().await;
    raise_open_file_limit();
    let soak = Soak::start().await;
    let started = Instant::now();

    let (at_start, _) = resident_kib();
    let sockets_per_round = SOCKETS + BURST + UNATTENDED;
    println!("soak: RSS at start {at_start} KiB; {sockets_per_round} sockets a round");
    // Warm-up: the allocator grows to the workload and the store fills to its bound.
    for round in 0..WARM_UP_ROUNDS {
        let (peak, rss) = soak.sampled_churn(round).await;
        assert_exercised(&peak);
        let stored = STORE_CAP.min((round + 1) * (CONVERSATIONS + UNATTENDED));
        let settled = soak.settle(&MemoryReport { stored_sessions: Some(stored), ..AT_REST }).await;
        let (after, _) = resident_kib();
        println!(
            "soak: warm-up round {round}: peak maps {peak:?}, RSS peak {rss} KiB, after cleanup {after} KiB; at rest {settled:?} after the churn"
        );
    }
    let (baseline, _) = resident_kib();
    println!("soak: baseline after {:?}: {AT_REST:?}, RSS {baseline} KiB", started.elapsed());

    let long = soak_seconds().map(Duration::from_secs);
    let mut round = WARM_UP_ROUNDS;
    let tolerance = if long.is_some() { LONG_RSS_TOLERANCE_KIB } else { RSS_TOLERANCE_KIB };
    let mut worst = baseline;
    let mut afters = Vec::new();
    loop {
        let round_started = Instant::now();
        let (peak, during) = soak.sampled_churn(round).await;
        assert_exercised(&peak);
        let settled = soak.settle(&AT_REST).await;
        let (after, _) = resident_kib();
        worst = worst.max(after);
        afters.push(after);
        println!(
            "soak: round {round}: {sockets_per_round} sockets in {:?}, peak maps {peak:?}; RSS peak {during} KiB, after cleanup {after} KiB ({:+} KiB vs baseline); maps at baseline {settled:?} after the churn",
            round_started.elapsed(),
            i128::from(after) - i128::from(baseline),
        );
        assert!(
            after <= baseline + tolerance,
            "round {round}: RSS {after} KiB after cleanup, baseline {baseline} KiB, tolerance {tolerance} KiB"
        );
        let measured = round + 1 - WARM_UP_ROUNDS;
        let done = match long {
            Some(total) => started.elapsed() >= total && measured >= SHORT_ROUNDS,
            None => measured >= SHORT_ROUNDS,
        };
        if done {
            break;
        }
        round += 1;
    }
    if long.is_some() && afters.len() >= 8 {
        let quarter = afters.len() / 4;
        let mean = |rounds: &[u64]| rounds.iter().sum::<u64>() / rounds.len() as u64;
        let (second, last) = (mean(&afters[quarter..2 * quarter]), mean(&afters[afters.len() - quarter..]));
        println!(
            "soak: mean RSS after cleanup, second quarter of the rounds {second} KiB, last quarter {last} KiB"
        );
        assert!(
            last <= second + LONG_RSS_TREND_KIB,
            "RSS keeps climbing: {second} KiB in the second quarter of the rounds, {last} KiB in the last"
        );
    }
    let (last, peak) = resident_kib();
    println!(
        "soak: {} measured rounds ({} sockets in all) in {:?}; RSS baseline {baseline} KiB, peak {peak} KiB, worst after cleanup {worst} KiB, at the end {last} KiB",
        round + 1 - WARM_UP_ROUNDS,
        sockets_per_round * (round + 1),
        started.elapsed()
    );
    soak.stop().await;
}

/// A session the memory store drops (its bound reached) while its answer still runs:
/// storing the answer fails with "not found", which no retry can mend, so the answer is
/// dropped rather than held in the outbox for ever (pinning the live session and its
/// actor). Found by this soak in a release build, where a burst of new sessions outran
/// the unattended answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_session_left_the_store_does_not_pin_its_live_session() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let vars: Vec<(&str, &str)> = vec![
        ("SERVER_HOST", "127.0.0.1"),
        ("SERVER_PORT", "0"),
        ("JWT_SECRET", SECRET),
        ("LLM_PROVIDER_1_ID", "quick"),
        ("LLM_PROVIDER_1_TYPE", "demo"),
        ("LLM_PROVIDER_1_DELAY", "0ms"),
        ("LLM_PROVIDER_2_ID", "slow"),
        ("LLM_PROVIDER_2_TYPE", "demo"),
        ("LLM_PROVIDER_2_DELAY", "20ms"),
        ("SESSION_TTL", "300ms"),
        ("SESSION_CLEANUP_INTERVAL", "100ms"),
        ("RATE_LIMIT_CLEANUP_INTERVAL", "100ms"),
        ("RATE_WINDOW", "1s"),
        ("MEMORY_STORE_MAX_SESSIONS", "1"),
        ("SHUTDOWN_TIMEOUT", "5s"),
    ];
    let soak = Soak::start_with(&vars).await;

    let mut slow = soak.open("alice").await;
    Soak::send(&mut slow, "a long answer", "slow").await;
    ws::frames_until(&mut slow, ws::deadline_in(ws::WAIT), |f| f["metadata"]["done"] == "false").await;
    // A second session: the store (bound 1) drops alice's while her answer streams.
    let mut quick = soak.open("bob").await;
    Soak::send(&mut quick, "hi", "quick").await;
    ws::frames_until(&mut quick, ws::deadline_in(ws::WAIT), ws::is_done).await;
    ws::frames_until(&mut slow, ws::deadline_in(ws::WAIT), ws::is_done).await;
    Soak::close(slow).await;
    Soak::close(quick).await;

    soak.settle(&MemoryReport { stored_sessions: Some(1), ..AT_REST }).await;
    soak.stop().await;
}
