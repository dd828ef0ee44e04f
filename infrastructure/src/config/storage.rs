//! The storage section: the backend, MongoDB's connection and retry settings, the
//! encryption-at-rest keys and the memory backend's cap; and its conversion into the
//! MongoDB adapter's [`MongoConfig`], the URI still wrapped.
//!
//! Keys and key ids are parsed here, with the storage adapter's own parser (one rule for
//! both), so a wrong key stops the start instead of the first write. This section is all
//! `chatbox migrate` validates besides logging.

use std::time::Duration;

use anyhow::Context;
use chatbox_mongodb_store::crypto::{EncryptionKey, KeyFormat, KeyId};
use chatbox_mongodb_store::{KeyRing, MongoConfig, RetryPolicy};
use validator::Validate;

use super::reader::Reader;
use super::secret::Secret;
use super::syntax::{collection_name_problem, database_name_problem};

/// The storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// In process memory (development).
    Memory,
    /// MongoDB.
    MongoDb,
}

/// `ENCRYPTION_KEY`, `ENCRYPTION_KEY_ID`, `ENCRYPTION_OLD_KEYS`.
#[derive(Debug, Clone)]
pub struct EncryptionSettings {
    /// The id written into every new ciphertext.
    pub key_id: KeyId,
    /// The key new data is encrypted with.
    pub key: EncryptionKey,
    /// Earlier keys, by id, that still decrypt what they encrypted.
    pub old_keys: Vec<(KeyId, EncryptionKey)>,
}

/// `MONGO_*`.
#[derive(Debug, Clone)]
pub struct MongoSettings {
    /// `MONGO_URI` (may carry a password).
    pub uri: Secret,
    /// `MONGO_DATABASE`.
    pub database: String,
    /// `MONGO_COLLECTION`: sessions; messages live in `<collection>_messages`.
    pub collection: String,
    /// `MONGO_CONNECT_TIMEOUT`.
    pub connect_timeout: Duration,
    /// `MONGO_RETRY_ATTEMPTS`: tries per operation, the first included.
    pub retry_attempts: u32,
    /// `MONGO_RETRY_DELAY`: the first backoff, doubled per retry.
    pub retry_delay: Duration,
    /// `MONGO_RETRY_MAX_DELAY`: the longest backoff.
    pub retry_max_delay: Duration,
}

/// `STORAGE_BACKEND`, `MONGO_*`, `ENCRYPTION_*`, `MEMORY_STORE_MAX_SESSIONS`.
#[derive(Debug, Clone, Validate)]
pub struct StorageSection {
    /// `STORAGE_BACKEND` (memory under `--dev`, whatever it says).
    pub backend: StorageBackend,
    /// `MONGO_*`, when `MONGO_URI` is set.
    pub mongo: Option<MongoSettings>,
    /// `ENCRYPTION_*`, when `ENCRYPTION_KEY` is set.
    pub encryption: Option<EncryptionSettings>,
    /// `MEMORY_STORE_MAX_SESSIONS`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub memory_store_max_sessions: usize,
}

impl StorageSection {
    /// Reads the section; `--dev` always stores in memory.
    pub(super) fn read(r: &mut Reader<'_>, dev: bool) -> Self {
        let mongo = mongo(r);
        let backend = backend(r, dev, mongo.is_some());
        let encryption = encryption(r, backend);
        let section = Self {
            backend,
            mongo,
            encryption,
            memory_store_max_sessions: r.number("MEMORY_STORE_MAX_SESSIONS", 10_000),
        };
        r.check_ranges(&section);
        section
    }

    /// The MongoDB adapter's configuration: connection, retries, and the key ring when
    /// encryption is configured. The URI stays wrapped; the adapter alone reads it.
    ///
    /// # Errors
    /// When `MONGO_URI` is not set, or the key ring refuses the keys.
    pub fn mongo_config(&self) -> anyhow::Result<MongoConfig> {
        let mongo = self.mongo.as_ref().context("MongoDB storage needs MONGO_URI")?;
        let keys = match &self.encryption {
            None => None,
            Some(encryption) => Some(
                KeyRing::new(encryption.key_id.clone(), &encryption.key, &encryption.old_keys)
                    .context("ENCRYPTION_OLD_KEYS")?,
            ),
        };
        Ok(MongoConfig {
            uri: mongo.uri.clone(),
            database: mongo.database.clone(),
            collection: mongo.collection.clone(),
            connect_timeout: mongo.connect_timeout,
            retry: RetryPolicy {
                attempts: mongo.retry_attempts,
                delay: mongo.retry_delay,
                max_delay: mongo.retry_max_delay,
            },
            keys,
        })
    }
}

fn encryption(r: &mut Reader<'_>, backend: StorageBackend) -> Option<EncryptionSettings> {
    let key_id = KeyId::parse(&r.text("ENCRYPTION_KEY_ID").unwrap_or_else(|| "k1".to_owned()))
        .map_err(|problem| r.fail("ENCRYPTION_KEY_ID", problem))
        .ok();
    let mut old_keys: Vec<(KeyId, EncryptionKey)> = Vec::new();
    for entry in r.list("ENCRYPTION_OLD_KEYS") {
        let Some((id, raw)) = entry.split_once(':') else {
            r.fail("ENCRYPTION_OLD_KEYS", "entries are id:key (the key in hex or base64), comma separated");
            continue;
        };
        let Ok(id) = KeyId::parse(id.trim()) else {
            r.fail("ENCRYPTION_OLD_KEYS", "a key id must be 1 to 32 characters of A-Z a-z 0-9 . _ -");
            continue;
        };
        if key_id.as_ref() == Some(&id) || old_keys.iter().any(|(known, _)| known == &id) {
            r.fail("ENCRYPTION_OLD_KEYS", format!("key id {:?} is used twice", id.as_str()));
        }
        // In a list, a raw 32-character key could hold the separators: hex or base64 only.
        // The message names the entry's id, never the key.
        match EncryptionKey::parse(raw.trim()) {
            Ok((key, KeyFormat::Hex | KeyFormat::Base64)) => old_keys.push((id, key)),
            Ok((_, KeyFormat::Raw)) | Err(_) => r.fail(
                "ENCRYPTION_OLD_KEYS",
                format!("the key of {:?} must be 32 bytes: 64 hex characters or base64", id.as_str()),
            ),
        }
    }
    let Some(raw) = r.text("ENCRYPTION_KEY") else {
        if !old_keys.is_empty() {
            r.fail("ENCRYPTION_OLD_KEYS", "needs ENCRYPTION_KEY (the current key) as well");
        }
        if backend == StorageBackend::MongoDb {
            r.warnings.push("ENCRYPTION_KEY is not set: messages are stored in clear".into());
        }
        return None;
    };
    let key = match EncryptionKey::parse(&raw) {
        Ok((key, format)) => {
            if format == KeyFormat::Raw {
                r.warnings.push(
                    "ENCRYPTION_KEY is 32 plain characters (the earlier service's form): accepted, but \
                     64 hex characters or base64 of 32 random bytes carry more entropy"
                        .into(),
                );
            }
            key
        }
        Err(problem) => {
            r.fail("ENCRYPTION_KEY", problem);
            return None;
        }
    };
    Some(EncryptionSettings { key_id: key_id?, key, old_keys })
}

fn mongo(r: &mut Reader<'_>) -> Option<MongoSettings> {
    let uri = r.text("MONGO_URI");
    if let Some(uri) = &uri
        && !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://"))
    {
        r.fail("MONGO_URI", "must start with mongodb:// or mongodb+srv://");
    }
    let database = r.text("MONGO_DATABASE").unwrap_or_else(|| "chat".to_owned());
    if let Some(problem) = database_name_problem(&database) {
        r.fail("MONGO_DATABASE", problem);
    }
    let collection = r.text("MONGO_COLLECTION").unwrap_or_else(|| "sessions".to_owned());
    if let Some(problem) = collection_name_problem(&collection) {
        r.fail("MONGO_COLLECTION", problem);
    }
    let connect_timeout = r.duration("MONGO_CONNECT_TIMEOUT", "10s");
    let retry_attempts = r.number::<u32>("MONGO_RETRY_ATTEMPTS", 3);
    if !(1..=10).contains(&retry_attempts) {
        r.fail("MONGO_RETRY_ATTEMPTS", "must be between 1 and 10");
    }
    let retry_delay = r.duration("MONGO_RETRY_DELAY", "100ms");
    let retry_max_delay = r.duration("MONGO_RETRY_MAX_DELAY", "2s");
    if retry_delay > retry_max_delay {
        r.fail("MONGO_RETRY_DELAY", "must not be longer than MONGO_RETRY_MAX_DELAY");
    }
    uri.map(|uri| MongoSettings {
        uri: Secret::new(uri),
        database,
        collection,
        connect_timeout,
        retry_attempts,
        retry_delay,
        retry_max_delay,
    })
}

fn backend(r: &mut Reader<'_>, dev: bool, mongo_configured: bool) -> StorageBackend {
    let requested = match r.text("STORAGE_BACKEND").map(|b| b.to_ascii_lowercase()).as_deref() {
        None if mongo_configured => StorageBackend::MongoDb,
        None | Some("memory") => StorageBackend::Memory,
        Some("mongodb") => StorageBackend::MongoDb,
        Some(other) => {
            r.fail("STORAGE_BACKEND", format!("must be memory or mongodb, got {other:?}"));
            StorageBackend::Memory
        }
    };
    if dev {
        if requested == StorageBackend::MongoDb {
            r.warnings.push("--dev uses memory storage; MONGO_URI and STORAGE_BACKEND are ignored".into());
        }
        StorageBackend::Memory
    } else {
        if requested == StorageBackend::MongoDb && !mongo_configured {
            r.fail("MONGO_URI", "is required when STORAGE_BACKEND is mongodb");
        }
        requested
    }
}

#[cfg(test)]
mod tests {
    use super::StorageBackend;
    use crate::config::{Loaded, load_from};

    const GOOD_SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";

    fn with(extra: &[(&str, &str)]) -> Loaded {
        let mut vars: Vec<(&str, &str)> =
            vec![("JWT_SECRET", GOOD_SECRET), ("LLM_PROVIDER_1_ID", "demo"), ("LLM_PROVIDER_1_TYPE", "demo")];
        vars.extend_from_slice(extra);
        load_from(&vars, false)
    }

    #[test]
    fn keys_are_checked_in_every_documented_form_and_never_echoed() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let base64 = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";
        let loaded = with(&[
            ("ENCRYPTION_KEY", "too-short-key"),
            ("ENCRYPTION_KEY_ID", "bad id"),
            ("ENCRYPTION_OLD_KEYS", "old:not-a-key,noseparator,raw:0123456789abcdefghijklmnopqrstuv"),
        ]);
        let problems = loaded.settings.expect_err("invalid");
        for variable in ["ENCRYPTION_KEY: ", "ENCRYPTION_KEY_ID: ", "ENCRYPTION_OLD_KEYS: "] {
            assert!(problems.iter().any(|p| p.starts_with(variable)), "{variable} in {problems:?}");
        }
        assert!(
            problems.iter().any(|p| p.contains("\"raw\"")),
            "a raw key is refused in the list: {problems:?}"
        );
        assert!(problems.iter().all(|p| !p.contains("too-short-key") && !p.contains("not-a-key")));
        assert!(problems.iter().all(|p| !p.contains("0123456789abcdef")), "keys are never echoed");

        let old_keys = format!("k0:{base64}");
        let settings =
            with(&[("ENCRYPTION_KEY", hex), ("ENCRYPTION_OLD_KEYS", &old_keys)]).settings.expect("valid");
        let encryption = settings.storage.encryption.expect("configured");
        assert_eq!((encryption.key_id.as_str(), encryption.old_keys.len()), ("k1", 1));
        let duplicate = format!("k1:{base64}");
        let problems = with(&[("ENCRYPTION_KEY", hex), ("ENCRYPTION_OLD_KEYS", &duplicate)]).settings;
        assert!(problems.expect_err("duplicate id").iter().any(|p| p.contains("used twice")));
        let raw = with(&[("ENCRYPTION_KEY", "0123456789abcdefghijklmnopqrstuv")]);
        assert!(raw.settings.is_ok() && raw.warnings.iter().any(|w| w.contains("32 plain characters")));
    }

    #[test]
    fn mongodb_is_chosen_by_a_uri_and_needs_one() {
        let settings = with(&[("MONGO_URI", "mongodb://127.0.0.1:27017")]).settings.expect("valid");
        assert_eq!(settings.storage.backend, StorageBackend::MongoDb);
        assert_eq!(settings.storage.mongo.as_ref().map(|m| m.collection.as_str()), Some("sessions"));
        let problems = with(&[("STORAGE_BACKEND", "mongodb")]).settings.expect_err("no URI");
        assert!(problems.iter().any(|p| p.starts_with("MONGO_URI: ")), "{problems:?}");
    }

    #[test]
    fn mongo_names_and_retries_are_checked() {
        let problems = with(&[
            ("MONGO_URI", "mongodb://127.0.0.1:27017"),
            ("MONGO_DATABASE", "chat.prod"),
            ("MONGO_COLLECTION", "system.sessions"),
            ("MONGO_RETRY_ATTEMPTS", "0"),
            ("MONGO_RETRY_DELAY", "5s"),
        ])
        .settings
        .expect_err("invalid");
        for variable in
            ["MONGO_DATABASE: ", "MONGO_COLLECTION: ", "MONGO_RETRY_ATTEMPTS: ", "MONGO_RETRY_DELAY: "]
        {
            assert!(problems.iter().any(|p| p.starts_with(variable)), "{variable} in {problems:?}");
        }
        assert!(problems.iter().all(|p| !p.contains("127.0.0.1")), "the URI is never echoed");
    }

    #[test]
    fn the_mongo_config_keeps_the_uri_wrapped_and_carries_the_keys() {
        let uri = "mongodb://chat:pw-Zq8unprinted@db:27017";
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let settings = with(&[("MONGO_URI", uri), ("MONGO_RETRY_ATTEMPTS", "4"), ("ENCRYPTION_KEY", hex)])
            .settings
            .expect("valid");
        let config = settings.storage.mongo_config().expect("config");
        assert_eq!(config.uri.expose(), uri);
        assert_eq!((config.retry.attempts, config.keys.is_some()), (4, true));
        assert!(!format!("{config:?}").contains("Zq8"), "{config:?}");
        let memory = with(&[]).settings.expect("valid");
        assert!(memory.storage.mongo_config().is_err(), "no URI, no MongoDB configuration");
    }
}
