//! Reading the `REDIS_URL` forms that name several hosts, which the client crate does
//! not read itself:
//!
//! - `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]` (or
//!   `rediss+sentinel://`, TLS to the data nodes): Sentinels (port 26379 by default) and
//!   the service they watch;
//! - `redis+cluster://[user:password@]host:port[,host:port…][/]` (or `rediss+cluster://`):
//!   some nodes of a Redis Cluster (port 6379 by default), from which the rest are found.
//!
//! The user and password are the data nodes'; `%XX` escapes in them are decoded. A URL
//! that cannot be read is refused without its text (it may hold a password).

use crate::error::RedisStateError;

/// What a multi-host URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// The primary the Sentinels name for `service`, database `db`.
    Sentinel { service: String, db: i64 },
    /// A Redis Cluster (database 0, the only one a cluster has).
    Cluster,
}

/// A multi-host URL's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MultiHostUrl {
    pub topology: Topology,
    /// `host:port` of each host named.
    pub hosts: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to the data nodes.
    pub tls: bool,
}

/// Reads a Sentinel or Cluster URL; `None` for another scheme (one Redis), an error for
/// a URL of these schemes that cannot be read.
pub(crate) fn multi_host_url(url: &str) -> Result<Option<MultiHostUrl>, RedisStateError> {
    const SCHEMES: [(&str, bool, bool); 4] = [
        ("redis+sentinel://", false, true),
        ("rediss+sentinel://", true, true),
        ("redis+cluster://", false, false),
        ("rediss+cluster://", true, false),
    ];
    let Some((tls, sentinel, rest)) = SCHEMES
        .iter()
        .find_map(|&(scheme, tls, sentinel)| url.strip_prefix(scheme).map(|rest| (tls, sentinel, rest)))
    else {
        return Ok(None);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
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
    let default_port = if sentinel { 26379 } else { 6379 };
    let hosts: Vec<String> = hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| if host.contains(':') { host.to_owned() } else { format!("{host}:{default_port}") })
        .collect();
    if hosts.is_empty() {
        return Err(RedisStateError::InvalidUrl);
    }
    let topology = if sentinel { sentinel_path(path)? } else { cluster_path(path)? };
    Ok(Some(MultiHostUrl { topology, hosts, username, password, tls }))
}

/// `service[/db]`.
fn sentinel_path(path: &str) -> Result<Topology, RedisStateError> {
    let mut parts = path.split('/');
    let service = parts.next().filter(|service| !service.is_empty()).ok_or(RedisStateError::InvalidUrl)?;
    let db = match parts.next().filter(|db| !db.is_empty()) {
        Some(db) => db.parse().map_err(|_| RedisStateError::InvalidUrl)?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err(RedisStateError::InvalidUrl);
    }
    Ok(Topology::Sentinel { service: service.to_owned(), db })
}

/// Nothing, or `0`: a cluster has one database.
fn cluster_path(path: &str) -> Result<Topology, RedisStateError> {
    if path.is_empty() || path == "0" { Ok(Topology::Cluster) } else { Err(RedisStateError::InvalidUrl) }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(service: &str, db: i64) -> Topology {
        Topology::Sentinel { service: service.to_owned(), db }
    }

    #[test]
    fn sentinel_urls_name_their_sentinels_service_database_and_credentials() {
        let url =
            multi_host_url("redis+sentinel://app:s3cret@s1:26379,s2,s3:26380/mymaster/2").expect("valid");
        assert_eq!(
            url,
            Some(MultiHostUrl {
                topology: sentinel("mymaster", 2),
                hosts: vec!["s1:26379".into(), "s2:26379".into(), "s3:26380".into()],
                username: Some("app".into()),
                password: Some("s3cret".into()),
                tls: false,
            })
        );
        let tls = multi_host_url("rediss+sentinel://:pw@s1/primary").expect("valid").expect("sentinel");
        assert_eq!(
            (tls.tls, tls.topology, tls.username, tls.password.as_deref()),
            (true, sentinel("primary", 0), None, Some("pw"))
        );
        assert_eq!(multi_host_url("redis://host:6379/0"), Ok(None), "one Redis");
        for broken in [
            "redis+sentinel://s1",
            "redis+sentinel:///svc",
            "redis+sentinel://s1/",
            "redis+sentinel://s1/svc/x",
            "redis+sentinel://s1/svc/0/more",
        ] {
            assert_eq!(multi_host_url(broken), Err(RedisStateError::InvalidUrl), "{broken}");
        }
    }

    #[test]
    fn cluster_urls_name_some_nodes_and_the_credentials_of_all() {
        let url = multi_host_url("redis+cluster://app:pw@n1:7000,n2,n3:7002").expect("valid");
        assert_eq!(
            url,
            Some(MultiHostUrl {
                topology: Topology::Cluster,
                hosts: vec!["n1:7000".into(), "n2:6379".into(), "n3:7002".into()],
                username: Some("app".into()),
                password: Some("pw".into()),
                tls: false,
            })
        );
        for fine in ["rediss+cluster://n1/", "rediss+cluster://n1/0"] {
            let url = multi_host_url(fine).expect("valid").expect("cluster");
            assert_eq!((url.tls, url.topology), (true, Topology::Cluster), "{fine}");
        }
        for broken in
            ["redis+cluster://", "redis+cluster:///", "redis+cluster://n1/1", "redis+cluster://n1/0/x"]
        {
            assert_eq!(multi_host_url(broken), Err(RedisStateError::InvalidUrl), "{broken}");
        }
    }

    #[test]
    fn escaped_credentials_are_decoded_and_broken_escapes_refused() {
        let escaped =
            multi_host_url("redis+sentinel://us%40er:p%3Aw%2F%40d@s1/svc").expect("valid").expect("sentinel");
        assert_eq!(
            (escaped.username.as_deref(), escaped.password.as_deref()),
            (Some("us@er"), Some("p:w/@d"))
        );
        let user_only = multi_host_url("redis+cluster://reader@n1").expect("valid").expect("cluster");
        assert_eq!((user_only.username.as_deref(), user_only.password), (Some("reader"), None));
        for broken in
            ["redis+sentinel://u:%zz@s1/svc", "redis+sentinel://u:%4@s1/svc", "redis+cluster://u:%ff@n1"]
        {
            assert_eq!(multi_host_url(broken), Err(RedisStateError::InvalidUrl), "{broken}");
        }
    }
}
