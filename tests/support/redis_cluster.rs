//! A real Redis Cluster for tests: `redis-server` processes (Debian's package) in cluster
//! mode on loopback, without persistence, formed by the commands `redis-cli --cluster
//! create` sends (nodes meet, slots are split between the primaries, each replica follows
//! its primary). A node fails over quickly (`cluster-node-timeout` 1 s), so a test can
//! kill a primary and watch its replica take over. Every process is killed when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Slots of a Redis Cluster.
const SLOTS: u16 = 16_384;
/// How long forming the cluster or a failover may take.
const SETTLE: Duration = Duration::from_secs(30);

/// One node: its port and its process (`None` once killed).
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A running cluster; its nodes are killed when it is dropped.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// A free port for a cluster node whose bus port (the port + 10000, which the node binds
/// too) exists and is free as well.
fn node_port() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        let bus_is_free = port
            .checked_add(10_000)
            .is_some_and(|bus| std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok());
        if bus_is_free {
            return port;
        }
    }
    panic!("no free pair of ports (a node's and its cluster bus's) in 100 tries");
}

/// One command to the node on `port`, its answer as the client reads it; `None` when the
/// node cannot be reached or refuses.
pub async fn ask(port: u16, args: &[&str]) -> Option<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut connection = client.get_multiplexed_async_connection_with_config(&config).await.ok()?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query_async(&mut connection).await.ok()
}

/// The answer to `args` on `port` as text (a bulk or simple string).
pub async fn ask_text(port: u16, args: &[&str]) -> Option<String> {
    match ask(port, args).await? {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        redis::Value::SimpleString(text) | redis::Value::VerbatimString { text, .. } => Some(text),
        other => Some(format!("{other:?}")),
    }
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each and waits until every
    /// node says the cluster is ok.
    pub async fn start(binary: &Path, primaries: usize, replicas: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "chatbox-redis-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the nodes' files");
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            let port = node_port();
            let child = Command::new(binary)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn redis-server");
            nodes.push(Node { port, child: Some(child) });
        }
        let cluster = Self { nodes, dir };
        for node in &cluster.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", node.port)).await.is_err() {
                assert!(Instant::now() < deadline, "redis-server did not listen on {}", node.port);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        cluster.form(primaries).await;
        cluster
    }

    async fn form(&self, primaries: usize) {
        let first = self.nodes[0].port;
        for node in &self.nodes[1..] {
            ask(first, &["CLUSTER", "MEET", "127.0.0.1", &node.port.to_string()]).await.expect("nodes meet");
        }
        let share = SLOTS / u16::try_from(primaries).expect("a few primaries");
        for (index, node) in self.nodes[..primaries].iter().enumerate() {
            let index = u16::try_from(index).expect("a few primaries");
            let start = index * share;
            let end = if usize::from(index) + 1 == primaries { SLOTS - 1 } else { start + share - 1 };
            ask(node.port, &["CLUSTER", "ADDSLOTSRANGE", &start.to_string(), &end.to_string()])
                .await
                .expect("slots assigned");
        }
        let all = self.nodes.len();
        for node in &self.nodes {
            self.until(node.port, &["CLUSTER", "NODES"], "every node knowing every other", |nodes| {
                nodes.lines().count() == all
            })
            .await;
        }
        for (index, replica) in self.nodes[primaries..].iter().enumerate() {
            let primary = self.nodes[index % primaries].port;
            let id = ask_text(primary, &["CLUSTER", "MYID"]).await.expect("a node id");
            ask(replica.port, &["CLUSTER", "REPLICATE", &id]).await.expect("a replica follows its primary");
        }
        for node in &self.nodes {
            self.until(node.port, &["CLUSTER", "INFO"], "the cluster being ok", |info| {
                info.contains("cluster_state:ok")
            })
            .await;
        }
        for replica in &self.nodes[primaries..] {
            self.until(replica.port, &["ROLE"], "each replica in sync", |role| role.contains("connected"))
                .await;
        }
    }

    /// Waits until `holds` is true of the answer to `args` on `port`.
    pub async fn until(&self, port: u16, args: &[&str], what: &str, holds: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + SETTLE;
        loop {
            if ask_text(port, args).await.is_some_and(|answer| holds(&answer)) {
                return;
            }
            assert!(Instant::now() < deadline, "{what} never happened (node {port})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `redis+cluster://` naming the first two nodes (the client finds the rest).
    pub fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{},127.0.0.1:{}/", self.nodes[0].port, self.nodes[1].port)
    }

    /// The ports of the live nodes.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes.iter().filter(|node| node.child.is_some()).map(|node| node.port).collect()
    }

    /// The port of the primary serving `key`'s slot now, as the live nodes see it.
    pub async fn primary_of(&self, key: &str) -> u16 {
        for port in self.live_ports() {
            if ask_text(port, &["ROLE"]).await.is_some_and(|role| role.contains("master"))
                && ask(port, &["EXISTS", key]).await.is_some()
            {
                return port;
            }
        }
        panic!("no live primary serves {key}");
    }

    /// The live nodes that hold a key matching `pattern`, each with how many.
    pub async fn holders(&self, pattern: &str) -> Vec<(u16, usize)> {
        let mut holders = Vec::new();
        for port in self.live_ports() {
            let role = ask_text(port, &["ROLE"]).await.unwrap_or_default();
            if !role.contains("master") {
                continue;
            }
            if let Some(redis::Value::Array(keys)) = ask(port, &["KEYS", pattern]).await
                && !keys.is_empty()
            {
                holders.push((port, keys.len()));
            }
        }
        holders
    }

    /// The port of the replica of the primary on `primary`.
    pub async fn replica_of(&self, primary: u16) -> u16 {
        let needle = format!("{primary}");
        for port in self.live_ports() {
            if port != primary
                && ask_text(port, &["ROLE"])
                    .await
                    .is_some_and(|role| role.contains("slave") && role.contains(&needle))
            {
                return port;
            }
        }
        panic!("the primary on {primary} has no live replica");
    }

    /// Waits until every replica of the primary on `port` has acknowledged all it wrote
    /// (Redis replicates asynchronously: a primary killed sooner loses its last writes,
    /// which is Redis's behaviour, not the client's under test).
    pub async fn until_replicated(&self, port: u16) {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(redis::Value::Array(role)) = ask(port, &["ROLE"]).await
                && let [_, redis::Value::Int(written), redis::Value::Array(replicas)] = role.as_slice()
                && !replicas.is_empty()
                && replicas.iter().all(|replica| match replica {
                    redis::Value::Array(fields) => match fields.get(2) {
                        Some(redis::Value::BulkString(acked)) => {
                            std::str::from_utf8(acked).ok().and_then(|acked| acked.parse::<i64>().ok())
                                == Some(*written)
                        }
                        _ => false,
                    },
                    _ => false,
                })
            {
                return;
            }
            assert!(Instant::now() < deadline, "the replicas of {port} never caught up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the node on `port` (as a crash would: no goodbye) once its replica has all
    /// it wrote, and waits until that replica serves in its place, as every other live
    /// node sees it.
    pub async fn kill_primary(&mut self, port: u16) -> u16 {
        let replica = self.replica_of(port).await;
        self.until_replicated(port).await;
        let node = self.nodes.iter_mut().find(|node| node.port == port).expect("a node of the cluster");
        if let Some(mut child) = node.child.take() {
            child.kill().await.expect("kill redis-server");
        }
        self.until(replica, &["ROLE"], "the replica being promoted", |role| role.contains("master")).await;
        for other in self.live_ports() {
            self.until(other, &["CLUSTER", "INFO"], "the cluster being ok again", |info| {
                info.contains("cluster_state:ok")
            })
            .await;
        }
        replica
    }
}
