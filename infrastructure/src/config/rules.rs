//! The parsing and validation rules of every variable.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chatbox_domain::ModelId;
use chatbox_domain::validation::host_is_internal;
use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use rand::Rng;
use validator::Validate;

use super::source::Source;
use super::{Loaded, LogFormat, ProviderKind, ProviderSettings, Secret, Settings, StorageBackend};

const DEFAULT_METRICS_NETWORKS: &str = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16";
const WEAK_PATTERNS: &[&str] = &[
    "secret",
    "password",
    "changeme",
    "change-me",
    "change_me",
    "default",
    "example",
    "placeholder",
    "replace_with",
    "your-",
    "test123",
    "12345",
    "qwerty",
    "admin",
];
const MIN_SECRET_BYTES: usize = 32;
const MIN_SECRET_DISTINCT_CHARS: usize = 8;
const MAX_JWT_LEEWAY: Duration = Duration::from_secs(300);

/// Why a JWT secret is refused. Never carries the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretProblem {
    /// Shorter than 32 bytes.
    TooShort,
    /// Contains a well-known weak pattern.
    WeakPattern(&'static str),
    /// Fewer than 8 distinct characters.
    TooFewDistinctCharacters,
}

impl std::fmt::Display for SecretProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort => write!(f, "must be at least {MIN_SECRET_BYTES} bytes"),
            Self::WeakPattern(pattern) => write!(f, "contains the weak pattern \"{pattern}\""),
            Self::TooFewDistinctCharacters => {
                write!(f, "must contain at least {MIN_SECRET_DISTINCT_CHARS} distinct characters")
            }
        }
    }
}

/// The first reason `secret` is too weak, if any.
#[must_use]
pub fn weak_secret_reason(secret: &str) -> Option<SecretProblem> {
    if secret.len() < MIN_SECRET_BYTES {
        return Some(SecretProblem::TooShort);
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(pattern) = WEAK_PATTERNS.iter().find(|p| lower.contains(*p)) {
        return Some(SecretProblem::WeakPattern(pattern));
    }
    if secret.chars().collect::<BTreeSet<_>>().len() < MIN_SECRET_DISTINCT_CHARS {
        return Some(SecretProblem::TooFewDistinctCharacters);
    }
    None
}

struct Reader<'a> {
    source: &'a Source,
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Reader<'_> {
    fn fail(&mut self, name: &str, problem: impl std::fmt::Display) {
        self.errors.push(format!("{name}: {problem}"));
    }

    fn text(&self, name: &str) -> Option<String> {
        self.source.get(name).map(str::to_owned)
    }

    fn number<T: FromStr + Copy>(&mut self, name: &str, default: T) -> T {
        match self.source.get(name) {
            None => default,
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                self.fail(name, format!("must be a whole number, got {raw:?}"));
                default
            }),
        }
    }

    fn duration(&mut self, name: &str, default: &str) -> Duration {
        let raw = self.source.get(name).unwrap_or(default).to_owned();
        match humantime::parse_duration(&raw) {
            Ok(duration) if !duration.is_zero() => duration,
            Ok(_) => {
                self.fail(name, "must be greater than zero");
                Duration::from_secs(1)
            }
            Err(_) => {
                self.fail(name, format!("must be a duration such as 100ms, 30s, 5m or 1h, got {raw:?}"));
                Duration::from_secs(1)
            }
        }
    }

    fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.source.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("true" | "1" | "yes" | "on") => true,
            Some("false" | "0" | "no" | "off") => false,
            Some(other) => {
                self.fail(name, format!("must be true or false, got {other:?}"));
                default
            }
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.source
            .get(name)
            .map(|raw| raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn cidrs(&mut self, name: &str, default: &str) -> Vec<IpNet> {
        let raw = self.source.get_raw(name).unwrap_or(default).to_owned();
        let mut networks = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match entry.parse::<IpNet>().or_else(|_| entry.parse::<IpAddr>().map(IpNet::from)) {
                Ok(network) => networks.push(network),
                Err(_) => self.fail(name, format!("{entry:?} is not a CIDR block such as 10.0.0.0/8")),
            }
        }
        networks
    }

    fn origins(&mut self, name: &str, list: Vec<String>) -> Vec<String> {
        for origin in &list {
            if origin == "*" {
                self.fail(name, "\"*\" is not allowed; list the exact origins (scheme://host[:port])");
            } else if !is_origin(origin) {
                self.fail(name, format!("{origin:?} is not an origin (scheme://host[:port], no path)"));
            }
        }
        list
    }
}

fn is_origin(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' '])
}

/// An endpoint: https anywhere, http only to internal hosts.
fn endpoint_problem(url: &str) -> Option<&'static str> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(host, _)| host)
    };
    if host.is_empty() {
        return Some("has no host");
    }
    match scheme {
        "https" => None,
        "http" if host_is_internal(host) || host.ends_with(".svc") => None,
        "http" => {
            Some("must use https (http is only allowed for loopback, private or cluster-internal hosts)")
        }
        _ => Some("must be an http(s) URL"),
    }
}

fn valid_prefix(prefix: &str) -> bool {
    prefix.starts_with('/')
        && prefix.len() > 1
        && !prefix.ends_with('/')
        && !prefix.contains("//")
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
}

fn generated_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..48).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

pub(super) fn load(source: &Source, dev_flag: bool, config_file: Option<PathBuf>) -> Loaded {
    let mut r = Reader { source, errors: Vec::new(), warnings: Vec::new() };
    let dev = dev_flag || r.boolean("CHATBOX_DEV", false);

    let log_level = r.text("LOG_LEVEL").unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        r.fail(
            "LOG_LEVEL",
            format!("{log_level:?} is not a level (error, warn, info, debug, trace) or filter"),
        );
    }
    let log_format = match r.text("LOG_FORMAT").map(|f| f.to_ascii_lowercase()).as_deref() {
        None => {
            if dev {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            }
        }
        Some("json") => LogFormat::Json,
        Some("pretty" | "text") => LogFormat::Pretty,
        Some(other) => {
            r.fail("LOG_FORMAT", format!("must be json or pretty, got {other:?}"));
            LogFormat::Json
        }
    };

    let server_host = r.text("SERVER_HOST").unwrap_or_else(|| "0.0.0.0".into());
    let server_host = server_host.parse::<IpAddr>().unwrap_or_else(|_| {
        r.fail("SERVER_HOST", format!("{server_host:?} is not an IP address"));
        IpAddr::from([0, 0, 0, 0])
    });
    let server_port = r.number::<u16>("SERVER_PORT", 8080);
    let prefix = r.text("CHATBOX_PATH_PREFIX").unwrap_or_else(|| "/chat".into());
    if !valid_prefix(&prefix) {
        r.fail("CHATBOX_PATH_PREFIX", "must start with /, not end with /, and use only URL-safe characters");
    }

    let (jwt_secret, jwt_secret_generated) = match r.text("JWT_SECRET") {
        Some(secret) => {
            if let Some(problem) = weak_secret_reason(&secret) {
                r.fail("JWT_SECRET", problem);
            }
            (Secret::new(secret), false)
        }
        None if dev => (Secret::new(generated_secret()), true),
        None => {
            r.fail("JWT_SECRET", "is required (at least 32 random bytes; try `openssl rand -base64 48`)");
            (Secret::new(String::new()), false)
        }
    };
    let mut jwt_algorithms = Vec::new();
    for name in r.list("JWT_ALGORITHMS") {
        match name.to_ascii_uppercase().as_str() {
            "HS256" => jwt_algorithms.push(Algorithm::HS256),
            "HS384" => jwt_algorithms.push(Algorithm::HS384),
            "HS512" => jwt_algorithms.push(Algorithm::HS512),
            _ => r.fail("JWT_ALGORITHMS", format!("{name:?} is not one of HS256, HS384, HS512")),
        }
    }
    if jwt_algorithms.is_empty() {
        jwt_algorithms.push(Algorithm::HS256);
    }
    let jwt_require_exp = r.boolean("JWT_REQUIRE_EXP", true);
    let jwt_leeway = match r.source.get("JWT_LEEWAY") {
        None => Duration::from_secs(30),
        Some(raw) => humantime::parse_duration(raw).unwrap_or_else(|_| {
            r.fail("JWT_LEEWAY", format!("must be a duration, got {raw:?}"));
            Duration::from_secs(30)
        }),
    };
    if jwt_leeway > MAX_JWT_LEEWAY {
        r.fail("JWT_LEEWAY", "must be at most 5m");
    }
    let jwt_enforce_expiry_on_open_sockets = r.boolean("JWT_ENFORCE_EXPIRY_ON_OPEN_SOCKETS", true);

    let (origin_name, origins_raw) = source
        .get_any(&["ALLOWED_ORIGINS", "WS_ALLOWED_ORIGINS"])
        .unwrap_or(("ALLOWED_ORIGINS", String::new()));
    let origins: Vec<String> =
        origins_raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let allowed_origins = r.origins(origin_name, origins);
    if allowed_origins.is_empty() {
        r.warnings
            .push("ALLOWED_ORIGINS is empty: WebSocket connections are accepted from any origin".into());
    }
    let cors = r.list("CORS_ALLOWED_ORIGINS");
    let cors_allowed_origins = r.origins("CORS_ALLOWED_ORIGINS", cors);
    let trusted_proxies = r.cidrs("TRUSTED_PROXIES", "");
    let metrics_allowed_networks = r.cidrs("METRICS_ALLOWED_NETWORKS", DEFAULT_METRICS_NETWORKS);

    let rate_limit_cleanup_interval = r.duration("RATE_LIMIT_CLEANUP_INTERVAL", "5m");
    let session_ttl = r.duration("SESSION_TTL", "15m");
    let session_cleanup_interval = r.duration("SESSION_CLEANUP_INTERVAL", "5m");
    if session_cleanup_interval > session_ttl {
        r.fail("SESSION_CLEANUP_INTERVAL", "must not be longer than SESSION_TTL");
    }

    let providers = providers(&mut r, dev);
    let storage_backend = storage(&mut r, dev);
    check_not_yet_used(&mut r);

    let settings = Settings {
        dev,
        server_host,
        server_port,
        chatbox_path_prefix: prefix,
        jwt_secret,
        jwt_secret_generated,
        jwt_algorithms,
        jwt_require_exp,
        jwt_issuer: r.text("JWT_ISSUER"),
        jwt_audience: r.text("JWT_AUDIENCE"),
        jwt_leeway,
        jwt_enforce_expiry_on_open_sockets,
        allowed_origins,
        cors_allowed_origins,
        trusted_proxies,
        metrics_allowed_networks,
        max_connections: r.number("MAX_CONNECTIONS", 10_000),
        max_connections_per_user: r.number("MAX_CONNECTIONS_PER_USER", 10),
        max_message_size: r.number("MAX_MESSAGE_SIZE", 1_048_576),
        max_content_chars: r.number("MAX_CONTENT_CHARS", 10_000),
        max_active_sessions_per_user: r.number("MAX_ACTIVE_SESSIONS_PER_USER", 20),
        rate_limit: r.number("RATE_LIMIT", 100),
        rate_window: r.duration("RATE_WINDOW", "1m"),
        admin_rate_limit: r.number("ADMIN_RATE_LIMIT", 20),
        admin_rate_window: r.duration("ADMIN_RATE_WINDOW", "1m"),
        public_rate_limit: r.number("PUBLIC_RATE_LIMIT", 60),
        rate_limit_cleanup_interval,
        session_ttl,
        session_cleanup_interval,
        reconnect_timeout: r.duration("RECONNECT_TIMEOUT", "15m"),
        share_ttl: r.duration("SHARE_TTL", "7d"),
        llm_stream_timeout: r.duration("LLM_STREAM_TIMEOUT", "120s"),
        llm_idle_timeout: r.duration("LLM_IDLE_TIMEOUT", "30s"),
        llm_context_messages: r.number("LLM_CONTEXT_MESSAGES", 20),
        llm_context_max_chars: r.number("LLM_CONTEXT_MAX_CHARS", 24_000),
        llm_system_prompt: r.text("LLM_SYSTEM_PROMPT"),
        llm_max_retries: r.number("LLM_MAX_RETRIES", 2),
        providers,
        storage_backend,
        memory_store_max_sessions: r.number("MEMORY_STORE_MAX_SESSIONS", 10_000),
        shutdown_timeout: r.duration("SHUTDOWN_TIMEOUT", "30s"),
        log_level: log_level.clone(),
        log_format,
        ws_ping_interval: r.duration("WS_PING_INTERVAL", "54s"),
        ws_pong_timeout: r.duration("WS_PONG_TIMEOUT", "60s"),
        ws_write_timeout: r.duration("WS_WRITE_TIMEOUT", "10s"),
        ws_send_queue: r.number("WS_SEND_QUEUE", 256),
        answer_queue_limit: r.number("ANSWER_QUEUE_LIMIT", 3),
        config_file,
    };
    if settings.ws_ping_interval >= settings.ws_pong_timeout {
        r.fail("WS_PING_INTERVAL", "must be shorter than WS_PONG_TIMEOUT");
    }
    if let Err(errors) = settings.validate() {
        let mut fields: Vec<_> = errors.field_errors().into_iter().collect();
        fields.sort_by_key(|(field, _)| field.to_string());
        for (field, problems) in fields {
            for problem in problems {
                let message = problem.message.as_deref().unwrap_or("is out of range");
                r.fail(&field.to_ascii_uppercase(), message);
            }
        }
    }
    let unread = source.unread_file_keys();
    if !unread.is_empty() {
        r.warnings.push(format!(
            "CHATBOX_CONFIG has keys no setting reads (misspelt, or placed under the wrong [table]?): {}",
            unread.join(", ")
        ));
    }
    let settings = if r.errors.is_empty() { Ok(settings) } else { Err(r.errors) };
    Loaded { settings, warnings: r.warnings, log_level, log_format }
}

fn providers(r: &mut Reader<'_>, dev: bool) -> Vec<ProviderSettings> {
    let mut numbers: BTreeSet<usize> = BTreeSet::new();
    for name in r.source.names() {
        if let Some(rest) = name.strip_prefix("LLM_PROVIDER_")
            && let Some((number, _)) = rest.split_once('_')
        {
            match number.parse::<usize>() {
                Ok(n) if n >= 1 => {
                    numbers.insert(n);
                }
                _ => r.fail(name, "providers are numbered LLM_PROVIDER_1_*, LLM_PROVIDER_2_*, …"),
            }
        }
    }
    let mut providers: Vec<ProviderSettings> = Vec::new();
    for (expected, n) in (1..).zip(numbers.iter().copied()) {
        if n != expected {
            r.fail(
                &format!("LLM_PROVIDER_{n}_ID"),
                format!("providers must be numbered without gaps (LLM_PROVIDER_{expected}_* is missing)"),
            );
            break;
        }
        if let Some(provider) = provider(r, n) {
            if providers.iter().any(|p| p.id == provider.id) {
                r.fail(
                    &format!("LLM_PROVIDER_{n}_ID"),
                    format!("id {:?} is used by another provider", provider.id.as_str()),
                );
            } else {
                providers.push(provider);
            }
        }
    }
    for (n, provider) in (1..).zip(&providers) {
        if let Some(fallback) = &provider.fallback {
            if fallback == &provider.id {
                r.fail(&format!("LLM_PROVIDER_{n}_FALLBACK"), "must name another provider");
            } else if !providers.iter().any(|p| &p.id == fallback) {
                r.fail(
                    &format!("LLM_PROVIDER_{n}_FALLBACK"),
                    format!("{:?} is not a configured provider id", fallback.as_str()),
                );
            }
        }
    }
    if providers.is_empty() && numbers.is_empty() {
        if dev {
            providers.push(ProviderSettings {
                id: ModelId::parse("demo").unwrap_or_else(|_| unreachable!("a valid literal id")),
                name: "Demo".into(),
                kind: ProviderKind::Demo,
                endpoint: None,
                api_key: None,
                model: None,
                max_tokens: None,
                temperature: None,
                fallback: None,
                delay: Duration::from_millis(30),
            });
        } else {
            r.fail(
                "LLM_PROVIDER_1_ID",
                "at least one provider must be configured (LLM_PROVIDER_1_ID, _TYPE, …)",
            );
        }
    }
    providers
}

fn provider(r: &mut Reader<'_>, n: usize) -> Option<ProviderSettings> {
    let var = |field: &str| format!("LLM_PROVIDER_{n}_{field}");
    let id = match r.text(&var("ID")) {
        None => {
            r.fail(&var("ID"), "is required");
            return None;
        }
        Some(raw) => match ModelId::parse(&raw) {
            Ok(id) => id,
            Err(problem) => {
                r.fail(&var("ID"), problem);
                return None;
            }
        },
    };
    let kind = match r.text(&var("TYPE")).map(|t| t.to_ascii_lowercase()).as_deref() {
        Some("openai") => ProviderKind::OpenAi,
        Some("anthropic") => ProviderKind::Anthropic,
        Some("dify") => ProviderKind::Dify,
        Some("demo") => ProviderKind::Demo,
        Some(other) => {
            r.fail(&var("TYPE"), format!("{other:?} is not one of openai, anthropic, dify, demo"));
            return None;
        }
        None => {
            r.fail(&var("TYPE"), "is required (openai, anthropic, dify or demo)");
            return None;
        }
    };
    let endpoint = r.text(&var("ENDPOINT"));
    let api_key = r.text(&var("API_KEY")).map(Secret::new);
    let model = r.text(&var("MODEL"));
    if kind != ProviderKind::Demo {
        match endpoint.as_deref().map(endpoint_problem) {
            None => r.fail(&var("ENDPOINT"), "is required"),
            Some(Some(problem)) => r.fail(&var("ENDPOINT"), problem),
            Some(None) => {}
        }
        if matches!(kind, ProviderKind::Anthropic | ProviderKind::Dify) && api_key.is_none() {
            r.fail(&var("API_KEY"), "is required for this provider type");
        }
        if matches!(kind, ProviderKind::OpenAi | ProviderKind::Anthropic) && model.is_none() {
            r.fail(&var("MODEL"), "is required for this provider type");
        }
    }
    let max_tokens = match r.source.get(&var("MAX_TOKENS")) {
        None => None,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                r.fail(&var("MAX_TOKENS"), "must be a whole number of at least 1");
                None
            }
        },
    };
    let temperature = match r.source.get(&var("TEMPERATURE")) {
        None => None,
        Some(raw) => match raw.parse::<f32>() {
            Ok(t) if (0.0..=2.0).contains(&t) => Some(t),
            _ => {
                r.fail(&var("TEMPERATURE"), "must be a number between 0 and 2");
                None
            }
        },
    };
    let fallback = match r.text(&var("FALLBACK")) {
        None => None,
        Some(raw) => ModelId::parse(&raw).map_err(|p| r.fail(&var("FALLBACK"), p)).ok(),
    };
    if kind != ProviderKind::Demo && r.source.is_set(&var("DELAY")) {
        r.fail(&var("DELAY"), "only applies to providers of type demo");
    }
    let delay = match r.source.get(&var("DELAY")) {
        None => Duration::from_millis(30),
        Some(raw) => humantime::parse_duration(raw).unwrap_or_else(|_| {
            r.fail(&var("DELAY"), format!("must be a duration such as 30ms, got {raw:?}"));
            Duration::from_millis(30)
        }),
    };
    let name = r.text(&var("NAME")).unwrap_or_else(|| id.to_string());
    Some(ProviderSettings {
        id,
        name,
        kind,
        endpoint,
        api_key,
        model,
        max_tokens,
        temperature,
        fallback,
        delay,
    })
}

fn storage(r: &mut Reader<'_>, dev: bool) -> StorageBackend {
    let mongo_uri = r.text("MONGO_URI");
    if let Some(uri) = &mongo_uri
        && !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://"))
    {
        r.fail("MONGO_URI", "must start with mongodb:// or mongodb+srv://");
    }
    let requested = match r.text("STORAGE_BACKEND").map(|b| b.to_ascii_lowercase()).as_deref() {
        None => {
            if mongo_uri.is_some() {
                StorageBackend::MongoDb
            } else {
                StorageBackend::Memory
            }
        }
        Some("memory") => StorageBackend::Memory,
        Some("mongodb") => StorageBackend::MongoDb,
        Some(other) => {
            r.fail("STORAGE_BACKEND", format!("must be memory or mongodb, got {other:?}"));
            StorageBackend::Memory
        }
    };
    for name in ["MONGO_CONNECT_TIMEOUT", "MONGO_RETRY_DELAY", "MONGO_RETRY_MAX_DELAY"] {
        if r.source.is_set(name) {
            let _ = r.duration(name, "1s");
        }
    }
    let _: u32 = r.number("MONGO_RETRY_ATTEMPTS", 3);
    if dev {
        if requested == StorageBackend::MongoDb {
            r.warnings.push("--dev uses memory storage; MONGO_URI and STORAGE_BACKEND are ignored".into());
        }
        return StorageBackend::Memory;
    }
    if requested == StorageBackend::MongoDb {
        r.fail("STORAGE_BACKEND", "mongodb storage is not available in this build yet; use memory");
    }
    requested
}

/// Variables of features that arrive in later releases: checked for shape, and a
/// warning says they have no effect yet, rather than silently ignoring them.
fn check_not_yet_used(r: &mut Reader<'_>) {
    if let Some(key) = r.text("ENCRYPTION_KEY") {
        let hex = key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit());
        let raw = key.len() == 32;
        let base64 = key.len() == 44 && key.ends_with('=');
        if !(hex || raw || base64) {
            r.fail("ENCRYPTION_KEY", "must be 32 bytes: 64 hex characters, base64, or exactly 32 characters");
        }
    }
    if let Some(tls) = r.text("SMTP_TLS")
        && !matches!(tls.as_str(), "starttls" | "tls" | "none")
    {
        r.fail("SMTP_TLS", "must be starttls, tls or none");
    }
    let _: u16 = r.number("SMTP_PORT", 587);
    if r.source.is_set("SMTP_HOST") != r.source.is_set("EMAIL_FROM") {
        r.fail("SMTP_HOST", "SMTP_HOST and EMAIL_FROM must be set together");
    }
    for email in r.list("ADMIN_EMAILS") {
        if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
            r.fail("ADMIN_EMAILS", format!("{email:?} is not an email address"));
        }
    }
    for phone in r.list("ADMIN_PHONES") {
        let digits = phone.strip_prefix('+').unwrap_or(&phone);
        if digits.len() < 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
            r.fail("ADMIN_PHONES", format!("{phone:?} is not a phone number in E.164 form (+15551234567)"));
        }
    }
    if let Some(provider) = r.text("SMS_PROVIDER")
        && !provider.eq_ignore_ascii_case("twilio")
    {
        r.fail("SMS_PROVIDER", "must be twilio");
    }
    if let Some(url) = r.text("SMS_ENDPOINT")
        && let Some(problem) =
            endpoint_problem(&url).or_else(|| (!url.contains("://")).then_some("must be an http(s) URL"))
    {
        r.fail("SMS_ENDPOINT", problem);
    }
    let later = [
        "TRUSTED_PROXIES",
        "ENCRYPTION_KEY",
        "ENCRYPTION_KEY_ID",
        "ENCRYPTION_OLD_KEYS",
        "ADMIN_EMAILS",
        "ADMIN_PHONES",
        "EMAIL_FROM",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USER",
        "SMTP_PASS",
        "SMTP_TLS",
        "SMS_PROVIDER",
        "SMS_ACCOUNT_SID",
        "SMS_AUTH_TOKEN",
        "SMS_API_KEY",
        "SMS_FROM",
        "SMS_ENDPOINT",
        "ADMIN_PANEL_URL",
        "METRICS_ALLOWED_NETWORKS",
        "ADMIN_RATE_LIMIT",
        "ADMIN_RATE_WINDOW",
        "PUBLIC_RATE_LIMIT",
        "SHARE_TTL",
        "MAX_ACTIVE_SESSIONS_PER_USER",
    ];
    let unused: Vec<&str> = later.iter().copied().filter(|name| r.source.is_set(name)).collect();
    if !unused.is_empty() {
        r.warnings.push(format!(
            "set but not used by this version yet (the features arrive in later releases): {}",
            unused.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_from;
    use super::*;

    const GOOD_SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";

    fn errors(vars: &[(&str, &str)]) -> Vec<String> {
        load_from(vars, false).settings.err().unwrap_or_default()
    }

    fn demo() -> Vec<(&'static str, &'static str)> {
        vec![("JWT_SECRET", GOOD_SECRET), ("LLM_PROVIDER_1_ID", "demo"), ("LLM_PROVIDER_1_TYPE", "demo")]
    }

    #[test]
    fn defaults_are_those_of_the_contract() {
        let settings = load_from(&demo(), false).settings.expect("valid");
        assert_eq!(settings.server_port, 8080);
        assert_eq!(settings.chatbox_path_prefix, "/chat");
        assert_eq!(settings.max_message_size, 1_048_576);
        assert_eq!(settings.rate_limit, 100);
        assert_eq!(settings.session_ttl, Duration::from_secs(900));
        assert_eq!(settings.share_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(settings.metrics_allowed_networks.len(), 5);
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.storage_backend, StorageBackend::Memory);
        assert_eq!(format!("{:?}", settings.jwt_secret), "***");
    }

    #[test]
    fn weak_secrets_are_refused_with_the_reason_and_never_echoed() {
        for (secret, reason) in [
            ("short", "at least 32 bytes"),
            ("my-super-secret-key-that-is-long-enough", "\"secret\""),
            ("ADMINadminADMINadminADMINadmin1234", "\"admin\""),
            ("abababababababababababababababababab", "distinct"),
        ] {
            let problems = errors(&[
                ("JWT_SECRET", secret),
                ("LLM_PROVIDER_1_ID", "d"),
                ("LLM_PROVIDER_1_TYPE", "demo"),
            ]);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with("JWT_SECRET: ") && problems[0].contains(reason), "{problems:?}");
            assert!(!problems[0].contains(secret), "the secret is never echoed");
        }
        assert!(errors(&[]).iter().any(|p| p.starts_with("JWT_SECRET: is required")));
    }

    #[test]
    fn every_problem_is_reported_with_its_variable() {
        let mut vars = demo();
        vars.extend([
            ("SERVER_PORT", "70000"),
            ("CHATBOX_PATH_PREFIX", "chat/"),
            ("RATE_WINDOW", "soon"),
            ("SESSION_TTL", "1m"),
            ("SESSION_CLEANUP_INTERVAL", "5m"),
            ("ALLOWED_ORIGINS", "*"),
            ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/33"),
            ("MAX_MESSAGE_SIZE", "10"),
            ("JWT_ALGORITHMS", "RS256"),
            ("JWT_LEEWAY", "10m"),
            ("MAX_CONNECTIONS", "0"),
        ]);
        let problems = errors(&vars);
        for variable in [
            "SERVER_PORT",
            "CHATBOX_PATH_PREFIX",
            "RATE_WINDOW",
            "SESSION_CLEANUP_INTERVAL",
            "ALLOWED_ORIGINS",
            "METRICS_ALLOWED_NETWORKS",
            "MAX_MESSAGE_SIZE",
            "JWT_ALGORITHMS",
            "JWT_LEEWAY",
            "MAX_CONNECTIONS",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(&format!("{variable}: "))),
                "{variable} missing from {problems:?}"
            );
        }
    }

    #[test]
    fn provider_blocks_are_checked() {
        let base = [("JWT_SECRET", GOOD_SECRET)];
        let gap = errors(&[
            base[0],
            ("LLM_PROVIDER_1_ID", "a"),
            ("LLM_PROVIDER_1_TYPE", "demo"),
            ("LLM_PROVIDER_3_ID", "c"),
            ("LLM_PROVIDER_3_TYPE", "demo"),
        ]);
        assert!(gap.iter().any(|p| p.contains("without gaps")), "{gap:?}");
        let duplicate = errors(&[
            base[0],
            ("LLM_PROVIDER_1_ID", "a"),
            ("LLM_PROVIDER_1_TYPE", "demo"),
            ("LLM_PROVIDER_2_ID", "a"),
            ("LLM_PROVIDER_2_TYPE", "demo"),
        ]);
        assert!(duplicate.iter().any(|p| p.starts_with("LLM_PROVIDER_2_ID")), "{duplicate:?}");
        let bad_type = errors(&[base[0], ("LLM_PROVIDER_1_ID", "a"), ("LLM_PROVIDER_1_TYPE", "gpt")]);
        assert!(bad_type.iter().any(|p| p.starts_with("LLM_PROVIDER_1_TYPE")), "{bad_type:?}");
        let fallback = errors(&[
            base[0],
            ("LLM_PROVIDER_1_ID", "a"),
            ("LLM_PROVIDER_1_TYPE", "demo"),
            ("LLM_PROVIDER_1_FALLBACK", "zzz"),
        ]);
        assert!(fallback.iter().any(|p| p.starts_with("LLM_PROVIDER_1_FALLBACK")), "{fallback:?}");
        let none = errors(&base);
        assert!(none.iter().any(|p| p.contains("at least one provider")), "{none:?}");
        let delay = load_from(
            &[
                base[0],
                ("LLM_PROVIDER_1_ID", "a"),
                ("LLM_PROVIDER_1_TYPE", "demo"),
                ("LLM_PROVIDER_1_DELAY", "5ms"),
            ],
            false,
        );
        assert_eq!(delay.settings.expect("valid").providers[0].delay, Duration::from_millis(5));
    }

    #[test]
    fn ws_allowed_origins_is_an_alias_and_checked_under_its_own_name() {
        let mut vars = demo();
        vars.push(("WS_ALLOWED_ORIGINS", "https://a.example.com, https://b.example.com:8443"));
        let settings = load_from(&vars, false).settings.expect("valid");
        assert_eq!(settings.allowed_origins, ["https://a.example.com", "https://b.example.com:8443"]);
        let mut bad = demo();
        bad.push(("WS_ALLOWED_ORIGINS", "https://a.example.com/path"));
        assert!(errors(&bad).iter().any(|p| p.starts_with("WS_ALLOWED_ORIGINS: ")));
    }

    #[test]
    fn endpoints_need_https_unless_internal() {
        assert_eq!(endpoint_problem("https://api.openai.com/v1"), None);
        assert_eq!(endpoint_problem("http://127.0.0.1:11434/v1"), None);
        assert_eq!(endpoint_problem("http://ollama:11434"), None);
        assert_eq!(endpoint_problem("http://vllm.ml.svc.cluster.local/v1"), None);
        assert!(endpoint_problem("http://api.example.com/v1").is_some());
    }

    #[test]
    fn the_example_file_loads_every_key_and_validates() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deployments/chatbox.example.toml");
        let source =
            Source::new([("JWT_SECRET".to_owned(), GOOD_SECRET.to_owned())], Some(&path)).expect("readable");
        let loaded = load(&source, false, Some(path));
        assert!(loaded.warnings.iter().all(|w| !w.contains("CHATBOX_CONFIG")), "{:?}", loaded.warnings);
        let settings = loaded.settings.expect("valid");
        assert_eq!(settings.allowed_origins, ["https://app.example.com"]);
        assert_eq!(settings.providers[0].delay, Duration::from_millis(30));
        assert_eq!(settings.session_cleanup_interval, Duration::from_secs(300));
    }

    #[test]
    fn misplaced_file_keys_are_reported() {
        let dir = std::env::temp_dir().join(format!("chatbox-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, "[jwt]\nsecret_typo = 1\nallowed_origins = \"https://a.example.com\"\n")
            .expect("write");
        let source = Source::new(demo().iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())), Some(&path))
            .expect("source");
        let loaded = load(&source, false, Some(path));
        let warning = loaded
            .warnings
            .iter()
            .find(|w| w.contains("CHATBOX_CONFIG"))
            .unwrap_or_else(|| panic!("no warning in {:?}", loaded.warnings));
        assert!(warning.contains("JWT_ALLOWED_ORIGINS") && warning.contains("JWT_SECRET_TYPO"), "{warning}");
    }

    #[test]
    fn dev_mode_needs_nothing_and_generates_a_strong_secret() {
        let loaded = load_from(&[], true);
        let settings = loaded.settings.expect("dev starts with nothing set");
        assert!(settings.jwt_secret_generated);
        assert_eq!(weak_secret_reason(settings.jwt_secret.expose()), None);
        assert_eq!(settings.providers[0].id.as_str(), "demo");
        assert_eq!(settings.log_format, LogFormat::Pretty);
    }
}
