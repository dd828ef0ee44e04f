//! Configuration: every variable of `docs/configuration.md`, read from the environment
//! and an optional TOML file, parsed into typed settings and validated as a whole.
//!
//! Loading never stops at the first problem: it collects one message per problem, each
//! naming its variable, so an operator fixes everything in one round. Secrets never
//! appear in a message or in `Debug` output.

mod alerts;
mod providers;
mod reader;
mod rules;
mod secret;
pub mod source;
mod storage;
mod syntax;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chatbox_domain::ModelId;
use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use validator::Validate;

pub use alerts::{AlertSettings, EmailSettings, SmsSettings, SmtpTls};
pub use secret::{Secret, SecretProblem, WEAK_PATTERNS, weak_secret_reason};
use source::Source;
pub use storage::{EncryptionSettings, MongoSettings};

/// A provider type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenAI-compatible server.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Dify's chat-messages API.
    Dify,
    /// The built-in demo model.
    Demo,
}

/// One `LLM_PROVIDER_<N>_*` block.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// `_ID`: the model id clients select.
    pub id: ModelId,
    /// `_NAME`: the display name.
    pub name: String,
    /// `_TYPE`.
    pub kind: ProviderKind,
    /// `_ENDPOINT`.
    pub endpoint: Option<String>,
    /// `_API_KEY`.
    pub api_key: Option<Secret>,
    /// `_MODEL`: the provider's own model name.
    pub model: Option<String>,
    /// `_MAX_TOKENS`.
    pub max_tokens: Option<u32>,
    /// `_TEMPERATURE`.
    pub temperature: Option<f32>,
    /// `_FALLBACK`: id of the provider to try when this one fails before its first token.
    pub fallback: Option<ModelId>,
    /// `_DELAY` (demo): pause between streamed words.
    pub delay: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// The storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// In process memory (development).
    Memory,
    /// MongoDB.
    MongoDb,
}

/// Every setting, typed and validated.
#[derive(Debug, Clone, Validate)]
pub struct Settings {
    /// `--dev` / `CHATBOX_DEV`.
    pub dev: bool,
    /// `SERVER_HOST`.
    pub server_host: IpAddr,
    /// `SERVER_PORT` (0 picks a free port).
    pub server_port: u16,
    /// `CHATBOX_PATH_PREFIX`.
    pub chatbox_path_prefix: String,
    /// `JWT_SECRET`.
    pub jwt_secret: Secret,
    /// True when `--dev` generated the secret for this run.
    pub jwt_secret_generated: bool,
    /// `JWT_ALGORITHMS`.
    pub jwt_algorithms: Vec<Algorithm>,
    /// `JWT_REQUIRE_EXP`.
    pub jwt_require_exp: bool,
    /// `JWT_ISSUER`.
    pub jwt_issuer: Option<String>,
    /// `JWT_AUDIENCE`.
    pub jwt_audience: Option<String>,
    /// `JWT_LEEWAY`.
    pub jwt_leeway: Duration,
    /// `JWT_ENFORCE_EXPIRY_ON_OPEN_SOCKETS`.
    pub jwt_enforce_expiry_on_open_sockets: bool,
    /// `ALLOWED_ORIGINS` (alias `WS_ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// `CORS_ALLOWED_ORIGINS`.
    pub cors_allowed_origins: Vec<String>,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<IpNet>,
    /// `METRICS_ALLOWED_NETWORKS`.
    pub metrics_allowed_networks: Vec<IpNet>,
    /// `MAX_CONNECTIONS`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_USER`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub max_connections_per_user: usize,
    /// `MAX_MESSAGE_SIZE`.
    #[validate(range(
        min = 1024,
        max = 16_777_216,
        message = "must be between 1 KiB (1024) and 16 MiB (16777216) bytes"
    ))]
    pub max_message_size: usize,
    /// `MAX_CONTENT_CHARS`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub max_content_chars: usize,
    /// `MAX_ACTIVE_SESSIONS_PER_USER`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub max_active_sessions_per_user: usize,
    /// `RATE_LIMIT`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub rate_limit: u32,
    /// `RATE_WINDOW`.
    pub rate_window: Duration,
    /// `ADMIN_RATE_LIMIT`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub admin_rate_limit: u32,
    /// `ADMIN_RATE_WINDOW`.
    pub admin_rate_window: Duration,
    /// `PUBLIC_RATE_LIMIT`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub public_rate_limit: u32,
    /// `RATE_LIMIT_CLEANUP_INTERVAL`.
    pub rate_limit_cleanup_interval: Duration,
    /// `SESSION_TTL`.
    pub session_ttl: Duration,
    /// `SESSION_CLEANUP_INTERVAL`.
    pub session_cleanup_interval: Duration,
    /// `RECONNECT_TIMEOUT`.
    pub reconnect_timeout: Duration,
    /// `SHARE_TTL`.
    pub share_ttl: Duration,
    /// `CSP_FRAME_ANCESTORS`: who may embed the service's responses (a CSP source list).
    pub csp_frame_ancestors: String,
    /// `HSTS_MAX_AGE`: `Strict-Transport-Security` max-age; unset sends none.
    pub hsts_max_age: Option<Duration>,
    /// `LLM_STREAM_TIMEOUT`.
    pub llm_stream_timeout: Duration,
    /// `LLM_IDLE_TIMEOUT`.
    pub llm_idle_timeout: Duration,
    /// `LLM_CONTEXT_MESSAGES`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub llm_context_messages: usize,
    /// `LLM_CONTEXT_MAX_CHARS`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub llm_context_max_chars: usize,
    /// `LLM_SYSTEM_PROMPT`.
    pub llm_system_prompt: Option<String>,
    /// `LLM_MAX_RETRIES`.
    #[validate(range(max = 10, message = "must be at most 10"))]
    pub llm_max_retries: u32,
    /// `LLM_PROVIDER_<N>_*`, in order.
    pub providers: Vec<ProviderSettings>,
    /// `STORAGE_BACKEND`.
    pub storage_backend: StorageBackend,
    /// `MONGO_*`, when `MONGO_URI` is set.
    pub mongo: Option<MongoSettings>,
    /// `ENCRYPTION_*`, when `ENCRYPTION_KEY` is set.
    pub encryption: Option<EncryptionSettings>,
    /// Admin alerts (`ADMIN_EMAILS`, `SMTP_*`, `SMS_*`, …).
    pub alerts: AlertSettings,
    /// `MEMORY_STORE_MAX_SESSIONS`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub memory_store_max_sessions: usize,
    /// `SHUTDOWN_TIMEOUT`.
    pub shutdown_timeout: Duration,
    /// `LOG_LEVEL`.
    pub log_level: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `WS_PING_INTERVAL` (extension).
    pub ws_ping_interval: Duration,
    /// `WS_PONG_TIMEOUT` (extension).
    pub ws_pong_timeout: Duration,
    /// `WS_WRITE_TIMEOUT` (extension).
    pub ws_write_timeout: Duration,
    /// `WS_SEND_BUFFER` (extension): bytes a socket may have queued.
    #[validate(range(
        min = 16_384,
        max = 67_108_864,
        message = "must be between 16 KiB (16384) and 64 MiB (67108864) bytes"
    ))]
    pub ws_send_buffer: usize,
    /// `HTTP_HEADER_READ_TIMEOUT` (extension): time to receive a request's headers.
    pub http_header_read_timeout: Duration,
    /// `HTTP_KEEPALIVE_TIMEOUT` (extension): how long an idle keep-alive connection stays.
    pub http_keepalive_timeout: Duration,
    /// `HTTP_MAX_PENDING_CONNECTIONS` (extension): open connections not (yet) upgraded.
    #[validate(range(min = 1, max = 1_000_000, message = "must be between 1 and 1000000"))]
    pub http_max_pending_connections: usize,
    /// `WS_COMMAND_BUDGET` (extension): budget units per connection per minute.
    #[validate(range(min = 10, max = 1_000_000, message = "must be between 10 and 1000000"))]
    pub ws_command_budget: u32,
    /// `MAX_ANSWER_CHARS` (extension): the longest answer, in characters.
    #[validate(range(min = 100, max = 10_000_000, message = "must be between 100 and 10000000"))]
    pub max_answer_chars: usize,
    /// `ANSWER_QUEUE_LIMIT` (extension): answers that may wait per session.
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    pub answer_queue_limit: usize,
    /// `CHATBOX_CONFIG`, if a file was read.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// The address to bind.
    #[must_use]
    pub const fn bind_address(&self) -> SocketAddr {
        SocketAddr::new(self.server_host, self.server_port)
    }
}

/// The result of loading: settings, or every problem found; plus warnings either way.
#[derive(Debug)]
pub struct Loaded {
    /// The settings, when valid.
    pub settings: Result<Settings, Vec<String>>,
    /// Things worth a warning that do not stop the start.
    pub warnings: Vec<String>,
    /// `LOG_LEVEL` and `LOG_FORMAT` as far as they could be read (to log the problems).
    pub log_level: String,
    /// See `log_level`.
    pub log_format: LogFormat,
}

/// Reads the configuration from the process environment (and `CHATBOX_CONFIG`).
#[must_use]
pub fn load_from_env(dev_flag: bool) -> Loaded {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let file = env
        .iter()
        .find(|(k, _)| k == "CHATBOX_CONFIG")
        .map(|(_, v)| PathBuf::from(v.trim()))
        .filter(|p| !p.as_os_str().is_empty());
    match Source::new(env, file.as_deref()) {
        Ok(source) => rules::load(&source, dev_flag, file),
        Err(problem) => Loaded {
            settings: Err(vec![problem]),
            warnings: Vec::new(),
            log_level: "info".into(),
            log_format: if dev_flag { LogFormat::Pretty } else { LogFormat::Json },
        },
    }
}

/// Every variable the configuration reads, sorted; a provider block's variables are
/// written `LLM_PROVIDER_<N>_<FIELD>`. Tests compare it with the documentation and the
/// deployment manifests, so none of the three can drift from the others.
#[must_use]
pub fn variables_read() -> Vec<String> {
    const PROVIDER: &str = "LLM_PROVIDER_1_";
    let vars = [("LLM_PROVIDER_1_ID", "demo"), ("LLM_PROVIDER_1_TYPE", "demo")];
    let source =
        Source::new(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())), None).unwrap_or_default();
    let _ = rules::load(&source, false, None);
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
    let source =
        Source::new(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())), None).unwrap_or_default();
    rules::load(&source, dev, None)
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
