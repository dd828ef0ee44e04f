//! A `redis+sentinel://` URL against real processes: a primary, its replica and a
//! Sentinel watching them (Debian's `redis-server`, in Sentinel mode for the last). The
//! shared state reaches the primary the Sentinel names, and after a failover (the replica
//! promoted) it reaches the new primary without being told. Failing over is the input
//! under test, so the test waits real times, always with a deadline.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chatbox_application::ports::{LimitVerdict, SharedState};
use chatbox_domain::UserId;
use chatbox_domain::rate_limit::Quota;
use chatbox_redis::{RedisSharedState, connect, connect_lazily};
use support::fresh_prefix;
use tokio::process::{Child, Command};
use tokio::time::Instant;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

fn spawn(binary: &Path, args: &[&str]) -> Child {
    Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn redis-server")
}

/// One Redis command to `port`, answered as text (`redis-cli` is not needed).
async fn ask(port: u16, args: &[&str]) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    let value: redis::Value = command.query_async(&mut connection).await.ok()?;
    Some(format!("{value:?}"))
}

/// Waits until `holds` is true of the answer to `args` on `port`.
async fn until(port: u16, args: &[&str], what: &str, holds: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ask(port, args).await.is_some_and(|answer| holds(&answer)) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_shared_state_follows_the_primary_the_sentinel_names_through_a_failover() {
    let Some(binary) = support::redis_server("sentinel") else { return };
    let dir = std::env::temp_dir().join(format!("chatbox-sentinel-{}", fresh_prefix().replace(':', "-")));
    std::fs::create_dir_all(&dir).expect("a directory");
    let (first, second, sentinel) = (free_port(), free_port(), free_port());
    let no_disk = ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"];
    let first_port = first.to_string();
    let mut args = vec!["--port", first_port.as_str()];
    args.extend(no_disk);
    let _primary = spawn(&binary, &args);
    let second_port = second.to_string();
    let mut args = vec!["--port", second_port.as_str(), "--replicaof", "127.0.0.1", first_port.as_str()];
    args.extend(no_disk);
    let _replica = spawn(&binary, &args);
    let config = dir.join("sentinel.conf");
    std::fs::write(
        &config,
        format!(
            "port {sentinel}\nbind 127.0.0.1\ndir {}\nsentinel monitor primary 127.0.0.1 {first} 1\nsentinel down-after-milliseconds primary 1000\nsentinel failover-timeout primary 5000\n",
            dir.display()
        ),
    )
    .expect("the Sentinel's configuration");
    let _sentinel = spawn(&binary, &[config.to_str().expect("a path"), "--sentinel"]);
    let replica_known = format!("{second}");
    until(sentinel, &["SENTINEL", "REPLICAS", "primary"], "the Sentinel seeing the replica", |answer| {
        answer.contains(&replica_known)
    })
    .await;

    let url = format!("redis+sentinel://127.0.0.1:{sentinel}/primary");
    // A Sentinel that has just started may not vouch for the primary yet (it checks the
    // primary's role before naming it): connect until it does, within a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let connection = loop {
        match connect(&url).await {
            Ok(connection) => break connection,
            Err(error) => assert!(Instant::now() < deadline, "the primary never answered: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let shared = RedisSharedState::new(connection, &fresh_prefix(), "a");
    let quota = Quota::new(100, Duration::from_secs(60)).expect("quota");
    assert_eq!(shared.check_rate("k", quota, 1).await, Ok(LimitVerdict::Allowed));
    let alice = UserId::parse("alice").expect("id");
    let slot = shared.claim_socket(&alice, 5).await.expect("answer").expect("a slot");
    assert_eq!(shared.sockets().held_by(&alice).await.expect("answer"), 1);

    // The replica becomes the primary; the old one a replica of it. The Sentinel refuses
    // until it deems the replica fit (in sync, recently heard from): ask until it agrees.
    until(sentinel, &["SENTINEL", "FAILOVER", "primary"], "the failover to start", |_| true).await;
    let promoted = format!("{second}");
    until(sentinel, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "primary"], "the failover", |answer| {
        answer.contains(&promoted)
    })
    .await;
    until(first, &["ROLE"], "the old primary following the new one", |answer| answer.contains("slave")).await;

    // The next calls may fail while the connection moves; then they reach the new primary.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = shared.claim_socket(&alice, 5).await {
            break;
        }
        assert!(Instant::now() < deadline, "never reached the new primary");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let direct = connect(&format!("redis://127.0.0.1:{second}/")).await.expect("the new primary answers");
    let on_new_primary = RedisSharedState::new(direct, "unused", "probe");
    assert_eq!(on_new_primary.ping().await, Ok(()));
    assert!(shared.ping().await.is_ok());
    drop(slot);
    let _ = std::fs::remove_dir_all(&dir);

    // A Sentinel URL that names nobody fails clearly, without its text in the error.
    let nobody = connect_lazily(
        &format!("redis+sentinel://user:hunter2@127.0.0.1:{}/primary", free_port()),
        Duration::from_millis(500),
    )
    .expect("a valid URL");
    let error = RedisSharedState::new(nobody, "p", "x").ping().await.expect_err("no Sentinel answers");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}
