//! What a cluster test needs around the `chatbox` binaries: a `redis-server` of its own
//! (Debian's package), which the test stops and starts again, and a round-robin TCP
//! proxy in front of the replicas, as a plain load balancer: connection `n` goes to
//! replica `n % replicas`, so a test knows where each socket lands.
//!
//! Without `redis-server` on `PATH` the cluster tests say what they skip; with
//! `CHATBOX_REQUIRE_REDIS=1` (CI) it is required.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// `CHATBOX_REQUIRE_REDIS=1`: the Redis checks must run.
pub fn redis_required() -> bool {
    std::env::var("CHATBOX_REQUIRE_REDIS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// `redis-server` on `PATH`, or `None` after a line saying `what` is skipped (a failed
/// test when required).
pub fn redis_binary(what: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join("redis-server")).find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(!redis_required(), "CHATBOX_REQUIRE_REDIS is set but `redis-server` is not on PATH");
        let _ = writeln!(
            std::io::stderr(),
            "{what}: SKIPPED (no `redis-server` on PATH; `apt-get install redis-server`, or run scripts/test.sh)"
        );
    }
    found
}

/// A free loopback port (bound, read, released: `redis-server` cannot report a port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// A `redis-server` on loopback, without persistence, killed when dropped.
pub struct Redis {
    binary: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts one on a free port and waits until it accepts connections.
    pub async fn start(binary: &Path) -> Self {
        let mut redis = Self { binary: binary.to_owned(), port: free_port(), child: None };
        redis.resume().await;
        redis
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops it (as a crash or a network cut would: no goodbye to its clients).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// Starts it again on the same port; waits until it accepts connections.
    pub async fn resume(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A round-robin TCP proxy: each accepted connection is piped to the next backend. The
/// backends can be replaced while it runs (a rolling update takes a replica out of the
/// rotation before stopping it); connections already piped stay where they are.
pub struct RoundRobin {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    backends: Arc<Mutex<Vec<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RoundRobin {
    /// Listens on a free loopback port in front of `backends` (their ports).
    pub async fn start(backends: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let backends = Arc::new(Mutex::new(backends));
        let (counter, rotation) = (Arc::clone(&accepted), Arc::clone(&backends));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let backend = {
                    let rotation = rotation.lock().expect("backends");
                    rotation[counter.fetch_add(1, Ordering::SeqCst) % rotation.len()]
                };
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", backend)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { port, accepted, backends, task }
    }

    /// Which backend the next connection reaches (its index among the backends).
    pub fn next_index(&self, replicas: usize) -> usize {
        self.accepted.load(Ordering::SeqCst) % replicas
    }

    /// From now on, new connections go to `backends`.
    pub fn set_backends(&self, backends: Vec<u16>) {
        *self.backends.lock().expect("backends") = backends;
    }
}
