//! Where the object store keeps files' bytes: a local directory, or an S3 bucket (AWS or
//! any S3-compatible server).
//!
//! Invariants:
//! - **Secrets stay wrapped.** Keys are held as [`Secret`], so `{:?}` of a configuration
//!   prints `***` for them; they are exposed only when the S3 client is built.
//! - **No key in the configuration means the usual AWS chain**: the `AWS_*` environment
//!   variables, then the web-identity, container or instance credentials.
//! - **Every request is bounded in time** by [`S3Config::timeout`].

use std::path::PathBuf;
use std::time::Duration;

use chatbox_domain::Secret;

/// How long one S3 request may take by default (connecting, sending, answering).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where files' bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreConfig {
    /// Files under a local directory (created if missing).
    Local {
        /// The directory.
        dir: PathBuf,
    },
    /// Files in an S3 bucket.
    S3(S3Config),
}

/// An S3 bucket and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket's name.
    pub bucket: String,
    /// The bucket's region, e.g. `us-east-1`.
    pub region: String,
    /// The endpoint of an S3-compatible server (e.g. `http://127.0.0.1:9000`), reached with
    /// path-style requests; `None` for AWS itself (or the `AWS_ENDPOINT` variable).
    pub endpoint: Option<String>,
    /// The access key id; with the secret key below. `None`: the usual AWS credentials
    /// of the environment or instance.
    pub access_key_id: Option<Secret>,
    /// The secret access key.
    pub secret_access_key: Option<Secret>,
    /// Whether a plain `http://` endpoint is allowed (a test server on loopback).
    pub allow_http: bool,
    /// How long one request may take. Writes, deletes: the whole request. Reads: the
    /// connection and the answer's headers, then each wait for more bytes of the body
    /// (a download to a slow reader may take longer as a whole). A failed request is
    /// retried while within this time from its first try, so an operation gives up
    /// after about twice this at worst.
    pub timeout: Duration,
}

impl S3Config {
    /// A bucket reached with the usual AWS credentials, over HTTPS, with
    /// [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: region.into(),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_keys() {
        let config = ObjectStoreConfig::S3(S3Config {
            access_key_id: Some(Secret::new("AKIDEXAMPLE-ID")),
            secret_access_key: Some(Secret::new("very-secret-key-value")),
            ..S3Config::new("bucket", "us-east-1")
        });
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret-key-value"), "{text}");
        assert!(!text.contains("AKIDEXAMPLE-ID"), "{text}");
        assert!(text.contains("bucket"), "{text}");
    }
}
