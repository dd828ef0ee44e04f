//! The shared-state section: `HUB_BACKEND` (where replicas share what must hold across
//! all of them: per-user limits and socket counts) and, for Redis, `REDIS_URL`,
//! `REDIS_KEY_PREFIX` and `REDIS_TIMEOUT`.
//!
//! Rules checked here: Redis needs its URL (a secret: never echoed), its prefix is
//! printable and bounded, and replicas that share live state must share the store too,
//! so `HUB_BACKEND=redis` needs MongoDB storage. `--dev` runs one process: memory, with
//! a warning when Redis was asked for.

use std::time::Duration;

use super::reader::Reader;
use super::secret::Secret;
use super::storage::StorageBackend;

/// Where live state is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubBackend {
    /// In this process only (one replica).
    Memory,
    /// In Redis, shared by every replica.
    Redis,
}

/// `REDIS_*`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_URL` (may carry a password).
    pub url: Secret,
    /// `REDIS_KEY_PREFIX`: every key the service writes is `<prefix>:…`.
    pub key_prefix: String,
    /// `REDIS_TIMEOUT`: the longest one operation may take before it counts as failed.
    pub timeout: Duration,
}

/// `HUB_BACKEND` and `REDIS_*`.
#[derive(Debug, Clone)]
pub struct HubSection {
    /// `HUB_BACKEND` (memory under `--dev`, whatever it says).
    pub backend: HubBackend,
    /// `REDIS_*`, when the backend is Redis.
    pub redis: Option<RedisSettings>,
}

const MAX_PREFIX_BYTES: usize = 64;
/// One Redis, the primary a set of Sentinels names, or a Redis Cluster.
const SCHEMES: [&str; 6] = [
    "redis://",
    "rediss://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
];

impl HubSection {
    /// Reads the section; `storage` is the store already chosen (replicas sharing live
    /// state must share it).
    pub(super) fn read(r: &mut Reader<'_>, dev: bool, storage: StorageBackend) -> Self {
        let requested = match r.text("HUB_BACKEND").map(|b| b.to_ascii_lowercase()).as_deref() {
            None | Some("memory") => HubBackend::Memory,
            Some("redis") => HubBackend::Redis,
            Some(other) => {
                r.fail("HUB_BACKEND", format!("must be memory or redis, got {other:?}"));
                HubBackend::Memory
            }
        };
        let url = r.text("REDIS_URL");
        if let Some(url) = &url
            && !SCHEMES.iter().any(|scheme| url.starts_with(scheme))
        {
            r.fail(
                "REDIS_URL",
                "must start with redis:// or rediss:// (TLS), redis+sentinel:// or rediss+sentinel:// (a Sentinel-monitored primary), or redis+cluster:// or rediss+cluster:// (a Redis Cluster)",
            );
        }
        let key_prefix = r.text("REDIS_KEY_PREFIX").unwrap_or_else(|| "chatbox".to_owned());
        if key_prefix.len() > MAX_PREFIX_BYTES || !key_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            r.fail(
                "REDIS_KEY_PREFIX",
                format!("must be at most {MAX_PREFIX_BYTES} printable characters without spaces"),
            );
        }
        let timeout = r.duration("REDIS_TIMEOUT", "2s");
        if dev {
            if requested == HubBackend::Redis {
                r.warnings.push("--dev runs one process: HUB_BACKEND=redis is ignored".into());
            }
            return Self { backend: HubBackend::Memory, redis: None };
        }
        if requested == HubBackend::Redis {
            if url.is_none() {
                r.fail("REDIS_URL", "is required when HUB_BACKEND is redis");
            }
            if storage != StorageBackend::MongoDb {
                r.fail(
                    "HUB_BACKEND",
                    "redis shares live state between replicas, which must then share the store: \
                     set STORAGE_BACKEND=mongodb",
                );
            }
        }
        let redis = url.filter(|_| requested == HubBackend::Redis).map(|url| RedisSettings {
            url: Secret::new(url),
            key_prefix,
            timeout,
        });
        Self { backend: requested, redis }
    }
}

#[cfg(test)]
mod tests {
    use super::HubBackend;
    use crate::config::{Loaded, load_from};

    const GOOD_SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";
    const MONGO: (&str, &str) = ("MONGO_URI", "mongodb://db:27017");

    fn with(extra: &[(&str, &str)], dev: bool) -> Loaded {
        let mut vars: Vec<(&str, &str)> =
            vec![("JWT_SECRET", GOOD_SECRET), ("LLM_PROVIDER_1_ID", "m"), ("LLM_PROVIDER_1_TYPE", "demo")];
        vars.extend_from_slice(extra);
        load_from(&vars, dev)
    }

    fn problems(extra: &[(&str, &str)]) -> Vec<String> {
        with(extra, false).settings.expect_err("refused")
    }

    #[test]
    fn memory_is_the_default_and_redis_needs_its_url_and_a_shared_store() {
        let settings = with(&[], false).settings.expect("valid");
        assert_eq!(settings.hub.backend, HubBackend::Memory);
        assert!(settings.hub.redis.is_none());

        let missing = problems(&[("HUB_BACKEND", "redis"), MONGO]);
        assert!(
            missing.iter().any(|p| p == "REDIS_URL: is required when HUB_BACKEND is redis"),
            "{missing:?}"
        );
        let unshared = problems(&[("HUB_BACKEND", "redis"), ("REDIS_URL", "redis://r:6379/0")]);
        assert!(
            unshared.iter().any(|p| p.starts_with("HUB_BACKEND: ") && p.contains("mongodb")),
            "{unshared:?}"
        );

        let sentinel =
            [("HUB_BACKEND", "redis"), ("REDIS_URL", "redis+sentinel://s1:26379,s2:26379/primary/0"), MONGO];
        assert!(with(&sentinel, false).settings.is_ok(), "a Sentinel URL is accepted");
        let cluster =
            [("HUB_BACKEND", "redis"), ("REDIS_URL", "rediss+cluster://u:pw@n1:7000,n2:7001"), MONGO];
        assert!(with(&cluster, false).settings.is_ok(), "a Cluster URL is accepted");
        let redis = with(&[("HUB_BACKEND", "Redis"), ("REDIS_URL", "rediss://u:pw@r:6380/1"), MONGO], false)
            .settings
            .expect("valid");
        assert_eq!(redis.hub.backend, HubBackend::Redis);
        let settings = redis.hub.redis.expect("redis settings");
        assert_eq!(settings.key_prefix, "chatbox");
        assert_eq!(settings.timeout, std::time::Duration::from_secs(2));
        assert_eq!(settings.url.expose(), "rediss://u:pw@r:6380/1");
    }

    #[test]
    fn a_bad_url_prefix_or_backend_is_named_and_the_url_never_echoed() {
        let url = "http://user:hunter2-pw@r:6379";
        let found = problems(&[
            ("HUB_BACKEND", "redis"),
            ("REDIS_URL", url),
            ("REDIS_KEY_PREFIX", "chat box:"),
            ("REDIS_TIMEOUT", "0s"),
            MONGO,
        ]);
        for name in ["REDIS_URL: must start with", "REDIS_KEY_PREFIX: ", "REDIS_TIMEOUT: "] {
            assert!(found.iter().any(|p| p.starts_with(name)), "{name} in {found:?}");
        }
        assert!(found.iter().all(|p| !p.contains("hunter2")), "{found:?}");
        let long = "p".repeat(65);
        assert!(problems(&[("REDIS_KEY_PREFIX", &long)]).iter().any(|p| p.starts_with("REDIS_KEY_PREFIX: ")));
        assert!(with(&[("REDIS_KEY_PREFIX", &long[..64])], false).settings.is_ok());
        let backend = problems(&[("HUB_BACKEND", "nats")]);
        assert!(
            backend.iter().any(|p| p == "HUB_BACKEND: must be memory or redis, got \"nats\""),
            "{backend:?}"
        );
    }

    #[test]
    fn dev_runs_one_process_in_memory_and_says_so() {
        let loaded = with(&[("HUB_BACKEND", "redis")], true);
        assert!(
            loaded.warnings.iter().any(|w| w.contains("HUB_BACKEND=redis is ignored")),
            "{:?}",
            loaded.warnings
        );
        let settings = loaded.settings.expect("valid under --dev");
        assert_eq!(settings.hub.backend, HubBackend::Memory);
        assert!(settings.hub.redis.is_none());
    }
}
