//! The connection every part of this adapter shares, opened from `REDIS_URL`:
//!
//! - `redis://host:port/db` or `rediss://…` (TLS): one Redis. A managed, multiplexed
//!   connection that reconnects by itself with backoff.
//! - `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]` (or
//!   `rediss+sentinel://`, TLS to the data nodes): the primary the Sentinels name for
//!   `service`, with the user, password and database of the URL. After a failure that may
//!   mean the primary moved (the connection broke or was refused, or a write reached a
//!   replica: `READONLY`), the Sentinels are asked again and the connection is replaced;
//!   the failed call itself fails (its caller refuses, as for any Redis failure) and the
//!   next one goes to the new primary.
//! - `redis+cluster://[user:password@]host:port[,host:port…]` (or `rediss+cluster://`):
//!   a Redis Cluster, found from the nodes named. The client routes each call to the
//!   primary of its keys' slot and follows redirections and failovers by itself. Every
//!   key of this adapter is written under one hash tag ([`RedisConnection::key_prefix`]),
//!   so the multi-key scripts and the follower's one read of many streams stay within
//!   one slot, as a cluster requires.
//!
//! Every call gives up after the configured timeout, connecting included. Nothing here
//! repeats the URL or a value read in an error (it may hold a password).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::Mutex;

use crate::error::RedisStateError;
use crate::url::{MultiHostUrl, Topology, multi_host_url};

/// Where the data is.
enum Endpoint {
    /// One Redis, by address.
    Direct(redis::Client),
    /// The primary of a Sentinel-monitored service.
    Sentinel(Mutex<SentinelClient>),
    /// A Redis Cluster: a client for calls, and one whose calls may block long.
    Cluster { calls: Box<ClusterClient>, blocking: Box<ClusterClient> },
}

/// A connection to one Redis (of type `Single`) or to a cluster.
#[derive(Clone)]
pub(crate) enum AnyConnection<Single> {
    Single(Single),
    Cluster(ClusterConnection),
}

/// The shared connection to where the data is: managed (it reconnects by itself).
type Link = AnyConnection<ConnectionManager>;

struct Shared {
    endpoint: Endpoint,
    timeout: Duration,
    /// The connection and its generation (one more each time it is replaced); `None`
    /// until the Sentinels named a primary, or the cluster's nodes answered.
    current: RwLock<Option<(u64, Link)>>,
    /// One re-resolution at a time; a caller that finds one running does not wait for it.
    resolving: Mutex<()>,
    /// When the Sentinels (or the cluster) were last asked: at most once per pause, so a
    /// burst of failures does not turn into a burst of questions.
    last_asked: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// The shortest pause between two questions to the Sentinels.
const ASK_PAUSE: Duration = Duration::from_millis(500);

/// How long a call on a blocking connection may wait for its answer; its caller bounds
/// each blocking read itself, by the block it asked for and a margin.
const BLOCKING_RESPONSE: Duration = Duration::from_secs(3600);

/// A shared connection to the primary (cheap to clone).
#[derive(Clone)]
pub struct RedisConnection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.shared.endpoint {
            Endpoint::Direct(_) => "direct",
            Endpoint::Sentinel(_) => "sentinel",
            Endpoint::Cluster { .. } => "cluster",
        };
        f.debug_struct("RedisConnection").field("endpoint", &kind).finish_non_exhaustive()
    }
}

/// A connection of its own, for calls that block it (the follower's reads).
pub(crate) type BlockingConnection = AnyConnection<MultiplexedConnection>;

impl RedisConnection {
    /// A connection for `url` that connects on first use; every call, connecting
    /// included, gives up after `timeout`.
    ///
    /// # Errors
    /// When `url` is not a Redis, Sentinel or Cluster URL.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, RedisStateError> {
        let (endpoint, current) = match multi_host_url(url)? {
            None => {
                let client = crate::client(url)?;
                let manager =
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config(timeout))?;
                (Endpoint::Direct(client), Some((0, Link::Single(manager))))
            }
            Some(url) => match &url.topology {
                Topology::Sentinel { service, db } => {
                    (Endpoint::Sentinel(Mutex::new(sentinel_client(&url, service, *db)?)), None)
                }
                Topology::Cluster => (
                    Endpoint::Cluster {
                        calls: Box::new(cluster_client(&url, timeout, Some(timeout))?),
                        blocking: Box::new(cluster_client(&url, timeout, None)?),
                    },
                    None,
                ),
            },
        };
        let shared = Shared {
            endpoint,
            timeout,
            current: RwLock::new(current),
            resolving: Mutex::new(()),
            last_asked: std::sync::Mutex::new(None),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The prefix every key under `prefix` is written with: `prefix` itself, except on a
    /// Redis Cluster, where it is made a hash tag (`{prefix}`) unless it holds one, so
    /// that every key of a deployment lives in one slot. Applying it twice changes
    /// nothing.
    #[must_use]
    pub fn key_prefix(&self, prefix: &str) -> String {
        match self.shared.endpoint {
            Endpoint::Cluster { .. } if !has_hash_tag(prefix) => format!("{{{prefix}}}"),
            _ => prefix.to_owned(),
        }
    }

    /// A client of the primary now.
    async fn primary_client(&self) -> Result<redis::Client, RedisStateError> {
        match &self.shared.endpoint {
            Endpoint::Direct(client) => Ok(client.clone()),
            Endpoint::Sentinel(sentinel) => {
                let mut sentinel = sentinel.lock().await;
                match tokio::time::timeout(self.shared.timeout, sentinel.async_get_client()).await {
                    Ok(client) => Ok(client?),
                    Err(_) => Err(RedisStateError::Unavailable("no Sentinel answered in time".into())),
                }
            }
            Endpoint::Cluster { .. } => Err(RedisStateError::Refused("a cluster has no one primary".into())),
        }
    }

    /// A connection of its own to where the data is, whose calls may block as long as
    /// they ask (the caller bounds them): the shared connection's response timeout would
    /// cut a long block short, and a block would hold up every call sharing it.
    ///
    /// # Errors
    /// When nothing answers.
    pub(crate) async fn blocking_connection(&self) -> Result<BlockingConnection, RedisStateError> {
        if let Endpoint::Cluster { blocking, .. } = &self.shared.endpoint {
            return Ok(BlockingConnection::Cluster(self.cluster_connection(blocking).await?));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.shared.timeout))
            .set_response_timeout(None);
        let client = self.primary_client().await?;
        Ok(BlockingConnection::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
    }

    /// A connection to the cluster through `client`, made within the timeout.
    async fn cluster_connection(&self, client: &ClusterClient) -> Result<ClusterConnection, RedisStateError> {
        match tokio::time::timeout(self.shared.timeout, client.get_async_connection()).await {
            Ok(connection) => Ok(connection?),
            Err(_) => Err(RedisStateError::Unavailable("no cluster node answered in time".into())),
        }
    }

    fn current(&self) -> Option<(u64, Link)> {
        self.shared.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A new connection to where the data is now: the primary the Sentinels name, or the
    /// cluster (its client finds every node from the ones named).
    async fn connect_again(&self) -> Option<Link> {
        match &self.shared.endpoint {
            Endpoint::Direct(_) => None,
            Endpoint::Sentinel(_) => {
                let client = self.primary_client().await.ok()?;
                let manager =
                    ConnectionManager::new_lazy_with_config(client, manager_config(self.shared.timeout))
                        .ok()?;
                Some(Link::Single(manager))
            }
            Endpoint::Cluster { calls, .. } => self.cluster_connection(calls).await.ok().map(Link::Cluster),
        }
    }

    /// Connects again, unless the connection of generation `failed` was replaced
    /// meanwhile, someone is connecting already, or the last attempt was less than
    /// [`ASK_PAUSE`] ago. A cluster's connection is made once: its client follows the
    /// cluster's changes by itself. Bounded by the timeout; callers never queue.
    async fn resolve_again(&self, failed: Option<u64>) {
        match self.shared.endpoint {
            Endpoint::Direct(_) => return,
            Endpoint::Cluster { .. } if failed.is_some() => return,
            _ => {}
        }
        // Another caller is connecting already: this one fails as it would have, at once.
        let Ok(_turn) = self.shared.resolving.try_lock() else { return };
        let now = self.current().map(|(generation, _)| generation);
        if now != failed {
            return;
        }
        {
            let mut last_asked =
                self.shared.last_asked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last_asked.is_some_and(|at| at.elapsed() < ASK_PAUSE) {
                return;
            }
            *last_asked = Some(tokio::time::Instant::now());
        }
        if let Some(link) = self.connect_again().await {
            let next = now.map_or(0, |generation| generation.wrapping_add(1));
            *self.shared.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((next, link));
        }
    }

    /// The connection to use now, connecting first when there is none yet; an error
    /// when nothing answers.
    async fn connection(&self) -> redis::RedisResult<(u64, Link)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        self.resolve_again(None).await;
        self.current().ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no primary known")))
    }

    /// After a call on the connection of `generation`: asks for the primary again when
    /// the failure says it may have moved.
    async fn after<T>(&self, generation: u64, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if let Err(error) = &result
            && may_have_moved(error)
        {
            self.resolve_again(Some(generation)).await;
        }
        result
    }
}

/// Whether `prefix` holds a hash tag: a `{` followed, later, by a `}` with something in
/// between (then a cluster hashes only that part of each key).
fn has_hash_tag(prefix: &str) -> bool {
    prefix.split_once('{').is_some_and(|(_, after)| after.find('}').is_some_and(|end| end > 0))
}

fn may_have_moved(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1))
}

/// The data nodes' user, password, database and TLS, as the URL gives them.
fn node_info(url: &MultiHostUrl, db: i64) -> redis::RedisConnectionInfo {
    let mut redis = redis::RedisConnectionInfo::default().set_db(db);
    if let Some(username) = &url.username {
        redis = redis.set_username(username);
    }
    if let Some(password) = &url.password {
        redis = redis.set_password(password);
    }
    redis
}

fn sentinel_client(url: &MultiHostUrl, service: &str, db: i64) -> Result<SentinelClient, RedisStateError> {
    let nodes: Vec<String> = url.hosts.iter().map(|host| format!("redis://{host}")).collect();
    let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(node_info(url, db));
    if url.tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    SentinelClient::build(nodes, service, Some(node), SentinelServerType::Master)
        .map_err(|_| RedisStateError::InvalidUrl)
}

/// A cluster client whose calls give up after `response` (`None`: after
/// [`BLOCKING_RESPONSE`], retries and redirections included.
fn cluster_client(
    url: &MultiHostUrl,
    connect: Duration,
    response: Option<Duration>,
) -> Result<ClusterClient, RedisStateError> {
    let scheme = if url.tls { "rediss" } else { "redis" };
    let nodes: Vec<String> = url.hosts.iter().map(|host| format!("{scheme}://{host}")).collect();
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(connect)
        .response_timeout(response.unwrap_or(BLOCKING_RESPONSE))
        .overall_response_timeout(Some(response.unwrap_or(BLOCKING_RESPONSE)))
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(500);
    if let Some(username) = &url.username {
        builder = builder.username(username);
    }
    if let Some(password) = &url.password {
        builder = builder.password(password);
    }
    if url.tls {
        builder = builder.tls(redis::TlsMode::Secure);
    }
    builder.build().map_err(|_| RedisStateError::InvalidUrl)
}

impl<Single: ConnectionLike + Send> ConnectionLike for AnyConnection<Single> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut connection) = self.connection().await?;
            let result = connection.req_packed_command(cmd).await;
            self.after(generation, result).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut connection) = self.connection().await?;
            let result = connection.req_packed_commands(pipeline, offset, count).await;
            self.after(generation, result).await
        })
    }

    fn get_db(&self) -> i64 {
        self.current().map_or(0, |(_, connection)| connection.get_db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn on_a_cluster_every_key_shares_the_prefix_hash_tag_once() {
        let cluster =
            RedisConnection::open("redis+cluster://n1:7000,n2:7001", Duration::from_secs(1)).expect("valid");
        assert_eq!(cluster.key_prefix("chatbox"), "{chatbox}");
        assert_eq!(cluster.key_prefix(&cluster.key_prefix("chatbox")), "{chatbox}", "applied twice");
        assert_eq!(cluster.key_prefix("app{eu}"), "app{eu}", "a tag of its own is kept");
        assert_eq!(cluster.key_prefix("a{}b"), "{a{}b}", "an empty tag is no tag");
        assert_eq!(cluster.key_prefix("a}b{"), "{a}b{}", "a brace pair the wrong way round is no tag");
        let single =
            RedisConnection::open("redis://127.0.0.1:6379/0", Duration::from_secs(1)).expect("valid");
        assert_eq!(single.key_prefix("chatbox"), "chatbox", "one Redis needs no tag");
        assert_eq!(format!("{cluster:?}"), "RedisConnection { endpoint: \"cluster\", .. }");
    }
}
