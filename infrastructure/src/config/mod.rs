//! Configuration: every variable of `docs/configuration.md`, read from the environment
//! and an optional TOML file, parsed into typed settings and validated as a whole.
//!
//! [`Settings`] is nested by concern, one module per section (`http`, `auth`, `chat`,
//! `limits`, `storage`, `hub`, `providers`, `alerts`, `telemetry`, `uploads`); each module reads and checks
//! its variables and converts its section into the configuration type of the adapter
//! that uses it. `settings` puts the sections together.
//!
//! Loading never stops at the first problem: it collects one message per problem, each
//! naming its variable, so an operator fixes everything in one round. Secrets never
//! appear in a message or in `Debug` output.

mod alerts;
mod auth;
mod chat;
mod http;
mod hub;
mod limits;
mod providers;
mod reader;
mod secret;
mod settings;
pub mod source;
mod storage;
mod syntax;
mod telemetry;
mod uploads;

use std::path::PathBuf;

pub use alerts::{AlertsSection, EmailSettings, SmsSettings, SmtpTls};
pub use auth::AuthSection;
pub use chat::ChatSection;
pub use http::HttpSection;
pub use hub::{HubBackend, HubSection, RedisSettings};
pub use limits::LimitsSection;
pub use providers::{ProviderKind, ProviderSettings, ProvidersSection};
pub use secret::{Secret, SecretProblem, WEAK_PATTERNS, weak_secret_reason};
pub use settings::{Loaded, Settings};
use source::Source;
pub use storage::{EncryptionSettings, MongoSettings, StorageBackend, StorageSection};
pub use telemetry::{LogFormat, TelemetrySection};
pub use uploads::{UploadStore, UploadsSection};

/// The process environment as a source, with the `CHATBOX_CONFIG` file it names.
fn environment() -> (Result<Source, String>, Option<PathBuf>) {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let file = env
        .iter()
        .find(|(k, _)| k == "CHATBOX_CONFIG")
        .map(|(_, v)| PathBuf::from(v.trim()))
        .filter(|p| !p.as_os_str().is_empty());
    (Source::new(env, file.as_deref()), file)
}

fn explicit(vars: &[(&str, &str)]) -> Source {
    Source::new(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())), None).unwrap_or_default()
}

/// Reads the configuration from the process environment (and `CHATBOX_CONFIG`).
#[must_use]
pub fn load_from_env(dev_flag: bool) -> Loaded {
    match environment() {
        (Ok(source), file) => settings::load(&source, dev_flag, file),
        (Err(problem), _) => Loaded::unreadable(problem, dev_flag),
    }
}

/// Reads only what `chatbox migrate` uses (storage, encryption, logging) from the
/// process environment (and `CHATBOX_CONFIG`): it runs without a provider or a JWT
/// secret, and a problem elsewhere does not stop it.
#[must_use]
pub fn load_storage_from_env() -> Loaded<StorageSection> {
    match environment() {
        (Ok(source), _) => settings::load_storage(&source),
        (Err(problem), _) => Loaded::unreadable(problem, false),
    }
}

/// Every variable the configuration reads, sorted; a provider block's variables are
/// written `LLM_PROVIDER_<N>_<FIELD>`. Tests compare it with the documentation and the
/// deployment manifests, so none of the three can drift from the others.
#[must_use]
pub fn variables_read() -> Vec<String> {
    const PROVIDER: &str = "LLM_PROVIDER_1_";
    let vars = [("LLM_PROVIDER_1_ID", "demo"), ("LLM_PROVIDER_1_TYPE", "demo")];
    let source = explicit(&vars);
    let _ = settings::load(&source, false, None);
    let mut names: Vec<String> = source
        .asked_names()
        .into_iter()
        .map(|name| match name.strip_prefix(PROVIDER) {
            Some(field) => format!("LLM_PROVIDER_<N>_{field}"),
            None => name,
        })
        .chain(std::iter::once("CHATBOX_CONFIG".to_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Reads the configuration from explicit values (tests).
#[must_use]
pub fn load_from(vars: &[(&str, &str)], dev: bool) -> Loaded {
    settings::load(&explicit(vars), dev, None)
}

/// Reads what `chatbox migrate` uses from explicit values (tests).
#[must_use]
pub fn load_storage_from(vars: &[(&str, &str)]) -> Loaded<StorageSection> {
    settings::load_storage(&explicit(vars))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The variables named in the first column of the tables of `docs/configuration.md`
    /// (a provider block's `_FIELD` rows become `LLM_PROVIDER_<N>_FIELD`).
    fn documented() -> BTreeSet<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let text = std::fs::read_to_string(path).expect("docs/configuration.md");
        let mut names = BTreeSet::new();
        for line in text.lines().filter(|l| l.starts_with("| `")) {
            let first_cell = line.split('|').nth(1).unwrap_or_default();
            for name in first_cell.split('`').skip(1).step_by(2) {
                if name.starts_with('_') {
                    names.insert(format!("LLM_PROVIDER_<N>{name}"));
                } else if name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
                    names.insert(name.to_owned());
                }
            }
        }
        names
    }

    #[test]
    fn the_configuration_page_documents_exactly_the_variables_the_code_reads() {
        let read: BTreeSet<String> = super::variables_read().into_iter().collect();
        let documented = documented();
        let undocumented: Vec<_> = read.difference(&documented).collect();
        let unread: Vec<_> = documented.difference(&read).collect();
        assert!(
            undocumented.is_empty() && unread.is_empty(),
            "read but not documented: {undocumented:?}; documented but not read: {unread:?}"
        );
    }
}
