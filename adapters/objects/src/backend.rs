//! Builds the `object_store` clients of a configuration: a local directory, or two S3
//! clients of one bucket (one for reads, one for everything else).
//!
//! Invariants:
//! - **Every S3 request is bounded in time.** Writes, deletes and the start of an
//!   upload have a whole-request timeout; reads have a connect timeout and an idle
//!   timeout between the body's bytes (a whole-request timeout would cut a long
//!   download to a slow reader), and the store bounds the wait for their headers.
//!   Retries stop once the timeout has passed since the first try.
//! - **Keys in the configuration are the only credentials used when given** (a session
//!   token from the environment is not mixed in); without them the usual AWS chain of
//!   the environment and instance applies, as `object_store`'s builder resolves it.
//! - **An endpoint means path-style requests** (`{endpoint}/{bucket}/{key}`), which
//!   S3-compatible servers expect.
//! - **A local directory is fsynced**: a finished file survives a crash.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential};
use object_store::local::LocalFileSystem;
use object_store::{ClientConfigKey, ClientOptions, RetryConfig, StaticCredentialProvider};

use crate::config::{ObjectStoreConfig, S3Config};
use crate::errors::{OpenError, Redactor};

/// The longest wait for a connection, whatever the timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a failed request is tried again (within the timeout).
const MAX_RETRIES: usize = 3;

/// The clients of one configured store.
#[derive(Debug)]
pub(crate) enum Backend {
    /// A local directory.
    Local(LocalFileSystem),
    /// An S3 bucket.
    S3(S3Clients),
}

/// The two clients of a bucket, which differ only in their timeouts.
#[derive(Debug)]
pub(crate) struct S3Clients {
    /// For reads: connect and idle timeouts, no whole-request timeout.
    pub(crate) reads: AmazonS3,
    /// For everything else: a whole-request timeout.
    pub(crate) writes: AmazonS3,
    /// The configured timeout.
    pub(crate) timeout: Duration,
}

/// The clients of `config`, and the redactor of its secrets.
///
/// # Errors
/// The directory cannot be created, or the S3 configuration is incomplete.
pub(crate) fn open(config: &ObjectStoreConfig) -> Result<(Backend, Redactor), OpenError> {
    match config {
        ObjectStoreConfig::Local { dir } => {
            std::fs::create_dir_all(dir)
                .map_err(|source| OpenError::Directory { dir: dir.clone(), source })?;
            let local = LocalFileSystem::new_with_prefix(dir)
                .map_err(|error| OpenError::Invalid(error.to_string()))?
                .with_fsync(true);
            Ok((Backend::Local(local), Redactor::default()))
        }
        ObjectStoreConfig::S3(s3) => {
            let redactor = Redactor::new(
                [&s3.access_key_id, &s3.secret_access_key]
                    .into_iter()
                    .flatten()
                    .map(|secret| secret.expose().to_owned()),
            );
            let build = |reads: bool| {
                s3_client(s3, reads).map_err(|error| OpenError::Invalid(redactor.redact(&error.to_string())))
            };
            let clients = S3Clients { reads: build(true)?, writes: build(false)?, timeout: s3.timeout };
            Ok((Backend::S3(clients), redactor))
        }
    }
}

/// One client of the bucket of `config`.
fn s3_client(config: &S3Config, reads: bool) -> object_store::Result<AmazonS3> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_client_options(client_options(config, reads))
        .with_retry(RetryConfig {
            backoff: object_store::BackoffConfig::default(),
            max_retries: MAX_RETRIES,
            retry_timeout: config.timeout,
        });
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
    }
    match (&config.access_key_id, &config.secret_access_key) {
        (Some(key_id), Some(secret_key)) => {
            let credential = AwsCredential {
                key_id: key_id.expose().to_owned(),
                secret_key: secret_key.expose().to_owned(),
                token: None,
            };
            builder = builder.with_credentials(Arc::new(StaticCredentialProvider::new(credential)));
        }
        (Some(key_id), None) => builder = builder.with_access_key_id(key_id.expose()),
        (None, Some(secret_key)) => builder = builder.with_secret_access_key(secret_key.expose()),
        (None, None) => {}
    }
    builder.build()
}

/// The HTTP client's options: those of the `AWS_*` environment (a proxy, say), then the
/// configured scheme and timeouts.
fn client_options(config: &S3Config, reads: bool) -> ClientOptions {
    let mut options = ClientOptions::new();
    for (name, value) in std::env::vars() {
        let Some(key) = name.to_ascii_lowercase().strip_prefix("aws_").map(str::to_owned) else {
            continue;
        };
        if let Ok(key) = key.parse::<ClientConfigKey>() {
            options = options.with_config(key, value);
        }
    }
    let options = options
        .with_allow_http(config.allow_http)
        .with_connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT));
    if reads {
        options.with_timeout_disabled().with_read_timeout(config.timeout)
    } else {
        options.with_timeout(config.timeout).with_read_timeout_disabled()
    }
}
