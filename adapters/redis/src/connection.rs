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
//!
//! Every call gives up after the configured timeout, connecting included. Nothing here
//! repeats the URL or a value read in an error (it may hold a password).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::Mutex;

use crate::error::RedisStateError;

/// Where the primary is.
enum Endpoint {
    /// One Redis, by address.
    Direct(redis::Client),
    /// The primary of a Sentinel-monitored service.
    Sentinel(Mutex<SentinelClient>),
}

struct Shared {
    endpoint: Endpoint,
    timeout: Duration,
    /// The connection to the primary and its generation (one more each time it is
    /// replaced); `None` until the Sentinels named a primary.
    current: RwLock<Option<(u64, ConnectionManager)>>,
    /// One re-resolution at a time; a caller that finds one running does not wait for it.
    resolving: Mutex<()>,
    /// When the Sentinels were last asked: they are asked at most once per pause, so a
    /// burst of failures does not turn into a burst of questions.
    last_asked: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// The shortest pause between two questions to the Sentinels.
const ASK_PAUSE: Duration = Duration::from_millis(500);

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
        };
        f.debug_struct("RedisConnection").field("endpoint", &kind).finish_non_exhaustive()
    }
}

/// A Sentinel URL's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    pub sentinels: Vec<String>,
    pub service: String,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
}

/// Reads `redis+sentinel://` and `rediss+sentinel://` URLs; `None` for another scheme,
/// an error for a Sentinel URL that cannot be read.
pub(crate) fn sentinel_url(url: &str) -> Result<Option<SentinelUrl>, RedisStateError> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
        (true, rest)
    } else {
        return Ok(None);
    };
    let (authority, path) = rest.split_once('/').ok_or(RedisStateError::InvalidUrl)?;
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (Some(credentials), hosts),
        None => (None, authority),
    };
    let (username, password) = match credentials {
        None => (None, None),
        Some(credentials) => match credentials.split_once(':') {
            Some((user, password)) => {
                let user = percent_decoded(user)?;
                ((!user.is_empty()).then_some(user), Some(percent_decoded(password)?))
            }
            None => (Some(percent_decoded(credentials)?), None),
        },
    };
    let sentinels: Vec<String> = hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| if host.contains(':') { host.to_owned() } else { format!("{host}:26379") })
        .collect();
    let mut parts = path.split('/');
    let service = parts.next().filter(|service| !service.is_empty()).ok_or(RedisStateError::InvalidUrl)?;
    let db = match parts.next().filter(|db| !db.is_empty()) {
        Some(db) => db.parse().map_err(|_| RedisStateError::InvalidUrl)?,
        None => 0,
    };
    if sentinels.is_empty() || parts.next().is_some() {
        return Err(RedisStateError::InvalidUrl);
    }
    Ok(Some(SentinelUrl { sentinels, service: service.to_owned(), db, username, password, tls }))
}

/// `text` with its `%XX` escapes decoded (a password holding `@`, `:` or `/` is written
/// escaped in a URL, as in a `redis://` one).
fn percent_decoded(text: &str) -> Result<String, RedisStateError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes.get(index + 1..index + 3).ok_or(RedisStateError::InvalidUrl)?;
            let hex = std::str::from_utf8(hex).map_err(|_| RedisStateError::InvalidUrl)?;
            decoded.push(u8::from_str_radix(hex, 16).map_err(|_| RedisStateError::InvalidUrl)?);
            index += 3;
        } else {
            decoded.push(byte);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| RedisStateError::InvalidUrl)
}

impl RedisConnection {
    /// A connection for `url` that connects on first use; every call, connecting
    /// included, gives up after `timeout`.
    ///
    /// # Errors
    /// When `url` is not a Redis or Sentinel URL.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, RedisStateError> {
        let (endpoint, current) = match sentinel_url(url)? {
            None => {
                let client = crate::client(url)?;
                let manager =
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config(timeout))?;
                (Endpoint::Direct(client), Some((0, manager)))
            }
            Some(sentinel) => (Endpoint::Sentinel(Mutex::new(sentinel_client(&sentinel)?)), None),
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

    /// A client of the primary now (for a connection of one's own, e.g. one that blocks).
    ///
    /// # Errors
    /// When the Sentinels cannot name a primary.
    pub async fn primary_client(&self) -> Result<redis::Client, RedisStateError> {
        match &self.shared.endpoint {
            Endpoint::Direct(client) => Ok(client.clone()),
            Endpoint::Sentinel(sentinel) => {
                let mut sentinel = sentinel.lock().await;
                match tokio::time::timeout(self.shared.timeout, sentinel.async_get_client()).await {
                    Ok(client) => Ok(client?),
                    Err(_) => Err(RedisStateError::Unavailable("no Sentinel answered in time".into())),
                }
            }
        }
    }

    fn current(&self) -> Option<(u64, ConnectionManager)> {
        self.shared.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Asks the Sentinels for the primary again and connects to it, unless the connection
    /// of generation `failed` was replaced meanwhile, someone is asking already, or they
    /// were asked less than [`ASK_PAUSE`] ago. Bounded by the timeout; callers never queue.
    async fn resolve_again(&self, failed: Option<u64>) {
        let Endpoint::Sentinel(_) = self.shared.endpoint else { return };
        // Another caller is asking already: this one fails as it would have, at once.
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
        if let Ok(client) = self.primary_client().await
            && let Ok(manager) =
                ConnectionManager::new_lazy_with_config(client, manager_config(self.shared.timeout))
        {
            let next = now.map_or(0, |generation| generation.wrapping_add(1));
            *self.shared.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((next, manager));
        }
    }

    /// The connection to use now, asking the Sentinels first when no primary is known
    /// yet; an error when they name none.
    async fn connection(&self) -> redis::RedisResult<(u64, ConnectionManager)> {
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

fn sentinel_client(url: &SentinelUrl) -> Result<SentinelClient, RedisStateError> {
    let nodes: Vec<String> = url.sentinels.iter().map(|host| format!("redis://{host}")).collect();
    let mut redis = redis::RedisConnectionInfo::default().set_db(url.db);
    if let Some(username) = &url.username {
        redis = redis.set_username(username);
    }
    if let Some(password) = &url.password {
        redis = redis.set_password(password);
    }
    let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
    if url.tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    SentinelClient::build(nodes, url.service.clone(), Some(node), SentinelServerType::Master)
        .map_err(|_| RedisStateError::InvalidUrl)
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

    #[test]
    fn sentinel_urls_name_their_sentinels_service_database_and_credentials() {
        let url = sentinel_url("redis+sentinel://app:s3cret@s1:26379,s2,s3:26380/mymaster/2").expect("valid");
        assert_eq!(
            url,
            Some(SentinelUrl {
                sentinels: vec!["s1:26379".into(), "s2:26379".into(), "s3:26380".into()],
                service: "mymaster".into(),
                db: 2,
                username: Some("app".into()),
                password: Some("s3cret".into()),
                tls: false,
            })
        );
        let tls = sentinel_url("rediss+sentinel://:pw@s1/primary").expect("valid").expect("sentinel");
        assert_eq!((tls.tls, tls.db, tls.username, tls.password.as_deref()), (true, 0, None, Some("pw")));
        assert_eq!(sentinel_url("redis://host:6379/0"), Ok(None), "not a Sentinel URL");
        let escaped =
            sentinel_url("redis+sentinel://us%40er:p%3Aw%2F%40d@s1/svc").expect("valid").expect("sentinel");
        assert_eq!(
            (escaped.username.as_deref(), escaped.password.as_deref()),
            (Some("us@er"), Some("p:w/@d"))
        );
        for broken in
            ["redis+sentinel://u:%zz@s1/svc", "redis+sentinel://u:%4@s1/svc", "redis+sentinel://u:%ff@s1/svc"]
        {
            assert_eq!(sentinel_url(broken), Err(RedisStateError::InvalidUrl), "{broken}");
        }
        for broken in [
            "redis+sentinel://s1",
            "redis+sentinel:///svc",
            "redis+sentinel://s1/",
            "redis+sentinel://s1/svc/x",
            "redis+sentinel://s1/svc/0/more",
        ] {
            assert_eq!(sentinel_url(broken), Err(RedisStateError::InvalidUrl), "{broken}");
        }
    }
}
