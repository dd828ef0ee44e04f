//! How `object_store`'s errors become [`FileStoreError`]s, and why a store may not open
//! ([`OpenError`]).
//!
//! Invariants:
//! - **A missing object is [`FileStoreError::NotFound`]**; every other failure is
//!   [`FileStoreError::Unavailable`] with a text for logs.
//! - **The text never holds a credential or a signature**: every configured secret is
//!   replaced by `***`, and the query of any URL in it (where a presigned URL carries
//!   its signature) is cut off.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use chatbox_application::ports::FileStoreError;
use thiserror::Error;

/// What replaces a secret or a URL's query in an error text.
const REDACTED: &str = "***";

/// Why a store could not be opened. The text never holds a credential.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The local directory could not be created.
    #[error("cannot create the file storage directory {dir}: {source}")]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration cannot be used.
    #[error("invalid file storage configuration: {0}")]
    Invalid(String),
}

/// Maps errors, taking out the secrets it was given.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Arc<[String]>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.secrets.len()).finish()
    }
}

impl Redactor {
    /// A redactor of `secrets` (empty ones are ignored).
    pub(crate) fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let secrets: Vec<String> = secrets.into_iter().filter(|secret| !secret.is_empty()).collect();
        Self { secrets: secrets.into() }
    }

    /// The port's error for `error`.
    pub(crate) fn error(&self, error: object_store::Error) -> FileStoreError {
        match error {
            object_store::Error::NotFound { .. } => FileStoreError::NotFound,
            other => self.unavailable(&other.to_string()),
        }
    }

    /// The port's error for `error` where "not found" cannot mean the object (starting
    /// or sending an upload: the bucket or the upload is missing): always
    /// [`FileStoreError::Unavailable`].
    pub(crate) fn failure(&self, error: &object_store::Error) -> FileStoreError {
        self.unavailable(&error.to_string())
    }

    /// [`FileStoreError::Unavailable`] with `text`, redacted.
    pub(crate) fn unavailable(&self, text: &str) -> FileStoreError {
        FileStoreError::Unavailable(self.redact(text))
    }

    /// `text` without the secrets and without URLs' queries.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut clean = without_url_queries(text);
        for secret in self.secrets.iter() {
            if clean.contains(secret.as_str()) {
                clean = clean.replace(secret.as_str(), REDACTED);
            }
        }
        clean
    }
}

/// `text` with whatever follows a `?` in a URL (up to the next white space) replaced.
fn without_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, url) = rest.split_at(start);
        out.push_str(before);
        let end = url.find(char::is_whitespace).unwrap_or(url.len());
        let (url, after) = url.split_at(end);
        match url.find('?') {
            Some(query) => {
                out.push_str(&url[..=query]);
                out.push_str(REDACTED);
            }
            None => out.push_str(url),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_queries_are_taken_out() {
        let redactor = Redactor::new(["s3cr3t".to_owned(), String::new()]);
        let text = redactor
            .redact("GET http://h:1/b/k?X-Amz-Signature=abc&X-Amz-Credential=id failed: key s3cr3t bad");
        assert_eq!(text, "GET http://h:1/b/k?*** failed: key *** bad");
        assert_eq!(redactor.redact("plain text"), "plain text");
        assert_eq!(redactor.redact("at https://h/p, then"), "at https://h/p, then");
    }

    #[test]
    fn not_found_is_its_own_error() {
        let redactor = Redactor::default();
        let missing = object_store::Error::NotFound { path: "files/x".into(), source: "gone".into() };
        assert!(matches!(redactor.error(missing), FileStoreError::NotFound));
        let other = object_store::Error::Generic { store: "S3", source: "refused".into() };
        assert!(
            matches!(redactor.error(other), FileStoreError::Unavailable(text) if text.contains("refused"))
        );
    }
}
