//! Storage settings: the backend, MongoDB's connection and retry settings, and the
//! encryption-at-rest keys. Keys are parsed into bytes here, so a wrong key stops the
//! start instead of the first write.

use std::time::Duration;

use base64::Engine as _;

use super::StorageBackend;
use super::reader::Reader;
use super::secret::Secret;
use super::syntax::{collection_name_problem, database_name_problem, is_key_id};

/// A 256-bit encryption key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    /// The key bytes; never log them.
    #[must_use]
    pub const fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `ENCRYPTION_KEY`, `ENCRYPTION_KEY_ID`, `ENCRYPTION_OLD_KEYS`.
#[derive(Debug, Clone)]
pub struct EncryptionSettings {
    /// The id written into every new ciphertext.
    pub key_id: String,
    /// The key new data is encrypted with.
    pub key: EncryptionKey,
    /// Earlier keys, by id, that still decrypt what they encrypted.
    pub old_keys: Vec<(String, EncryptionKey)>,
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

/// Everything about where sessions are stored.
#[derive(Debug, Clone)]
pub(super) struct StorageSettings {
    pub backend: StorageBackend,
    pub mongo: Option<MongoSettings>,
    pub encryption: Option<EncryptionSettings>,
}

/// Why a key is refused; `raw_allowed` is false where the key sits in a list whose
/// separators a raw 32-character key could contain.
fn parse_key(raw: &str, raw_allowed: bool) -> Result<(EncryptionKey, bool), &'static str> {
    if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(raw.as_bytes().chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| "is not hex")?;
            *byte = u8::from_str_radix(text, 16).map_err(|_| "is not hex")?;
        }
        return Ok((EncryptionKey(key), false));
    }
    if raw_allowed && raw.len() == 32 {
        let mut key = [0u8; 32];
        key.copy_from_slice(raw.as_bytes());
        return Ok((EncryptionKey(key), true));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
        .map_err(|_| "must be 32 bytes: 64 hex characters, base64, or exactly 32 characters")?;
    let key: [u8; 32] = decoded
        .try_into()
        .map_err(|_| "must be 32 bytes: 64 hex characters, base64, or exactly 32 characters")?;
    Ok((EncryptionKey(key), false))
}

fn encryption(r: &mut Reader<'_>, backend: StorageBackend) -> Option<EncryptionSettings> {
    let key_id = r.text("ENCRYPTION_KEY_ID").unwrap_or_else(|| "k1".to_owned());
    if !is_key_id(&key_id) {
        r.fail("ENCRYPTION_KEY_ID", "must be 1 to 32 characters of A-Z a-z 0-9 _ -");
    }
    let mut old_keys: Vec<(String, EncryptionKey)> = Vec::new();
    for entry in r.list("ENCRYPTION_OLD_KEYS") {
        let Some((id, raw)) = entry.split_once(':') else {
            r.fail("ENCRYPTION_OLD_KEYS", "entries are id:key (the key in hex or base64), comma separated");
            continue;
        };
        if !is_key_id(id) {
            r.fail("ENCRYPTION_OLD_KEYS", "a key id must be 1 to 32 characters of A-Z a-z 0-9 _ -");
        } else if id == key_id || old_keys.iter().any(|(known, _)| known == id) {
            r.fail("ENCRYPTION_OLD_KEYS", format!("key id {id:?} is used twice"));
        }
        match parse_key(raw, false) {
            Ok((key, _)) => old_keys.push((id.to_owned(), key)),
            // The message names the entry's id, never the key.
            Err(problem) => r.fail("ENCRYPTION_OLD_KEYS", format!("the key of {id:?} {problem}")),
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
    match parse_key(&raw, true) {
        Ok((key, raw_characters)) => {
            if raw_characters {
                r.warnings.push(
                    "ENCRYPTION_KEY is 32 plain characters (the earlier service's form): accepted, but \
                     64 hex characters or base64 of 32 random bytes carry more entropy"
                        .into(),
                );
            }
            Some(EncryptionSettings { key_id, key, old_keys })
        }
        Err(problem) => {
            r.fail("ENCRYPTION_KEY", problem);
            None
        }
    }
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

pub(super) fn storage(r: &mut Reader<'_>, dev: bool) -> StorageSettings {
    let mongo = mongo(r);
    let requested = match r.text("STORAGE_BACKEND").map(|b| b.to_ascii_lowercase()).as_deref() {
        None if mongo.is_some() => StorageBackend::MongoDb,
        None | Some("memory") => StorageBackend::Memory,
        Some("mongodb") => StorageBackend::MongoDb,
        Some(other) => {
            r.fail("STORAGE_BACKEND", format!("must be memory or mongodb, got {other:?}"));
            StorageBackend::Memory
        }
    };
    let backend = if dev {
        if requested == StorageBackend::MongoDb {
            r.warnings.push("--dev uses memory storage; MONGO_URI and STORAGE_BACKEND are ignored".into());
        }
        StorageBackend::Memory
    } else {
        if requested == StorageBackend::MongoDb && mongo.is_none() {
            r.fail("MONGO_URI", "is required when STORAGE_BACKEND is mongodb");
        }
        requested
    };
    let encryption = encryption(r, backend);
    StorageSettings { backend, mongo, encryption }
}

#[cfg(test)]
mod tests {
    use super::super::load_from;
    use super::*;

    const GOOD_SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";

    fn with(extra: &[(&str, &str)]) -> super::super::Loaded {
        let mut vars: Vec<(&str, &str)> =
            vec![("JWT_SECRET", GOOD_SECRET), ("LLM_PROVIDER_1_ID", "demo"), ("LLM_PROVIDER_1_TYPE", "demo")];
        vars.extend_from_slice(extra);
        load_from(&vars, false)
    }

    #[test]
    fn keys_parse_in_every_documented_form_and_are_never_echoed() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let (key, raw) = parse_key(hex, true).expect("hex");
        assert!(!raw && key.expose()[1] == 0x11);
        let base64 = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";
        assert_eq!(parse_key(base64, true).expect("base64").0, key);
        assert!(parse_key("0123456789abcdefghijklmnopqrstuv", true).expect("raw").1);
        assert!(parse_key("0123456789abcdefghijklmnopqrstuv", false).is_err(), "no raw form in lists");
        assert_eq!(format!("{key:?}"), "***");

        let loaded = with(&[
            ("ENCRYPTION_KEY", "too-short-key"),
            ("ENCRYPTION_KEY_ID", "bad id"),
            ("ENCRYPTION_OLD_KEYS", "old:not-a-key,noseparator"),
        ]);
        let problems = loaded.settings.expect_err("invalid");
        for variable in ["ENCRYPTION_KEY: ", "ENCRYPTION_KEY_ID: ", "ENCRYPTION_OLD_KEYS: "] {
            assert!(problems.iter().any(|p| p.starts_with(variable)), "{variable} in {problems:?}");
        }
        assert!(problems.iter().all(|p| !p.contains("too-short-key") && !p.contains("not-a-key")));

        let old_keys = format!("k0:{base64}");
        let settings =
            with(&[("ENCRYPTION_KEY", hex), ("ENCRYPTION_OLD_KEYS", &old_keys)]).settings.expect("valid");
        let encryption = settings.encryption.expect("configured");
        assert_eq!((encryption.key_id.as_str(), encryption.old_keys.len()), ("k1", 1));
    }

    #[test]
    fn mongodb_is_chosen_by_a_uri_and_needs_one() {
        let settings = with(&[("MONGO_URI", "mongodb://127.0.0.1:27017")]).settings.expect("valid");
        assert_eq!(settings.storage_backend, StorageBackend::MongoDb);
        assert_eq!(settings.mongo.as_ref().map(|m| m.collection.as_str()), Some("sessions"));
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
}
