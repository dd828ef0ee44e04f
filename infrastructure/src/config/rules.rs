//! Loading: every variable read, checked and typed, in one pass that reports every
//! problem. The rules of each group live beside it (`providers`, `storage`, `alerts`);
//! the shapes of single values in `syntax`; reading and defaults in `reader`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use validator::Validate;

use super::alerts::alerts;
use super::providers::providers;
use super::reader::Reader;
use super::secret::{Secret, generated_secret, weak_secret_reason};
use super::source::Source;
use super::storage::storage;
use super::syntax::valid_prefix;
use super::{Loaded, LogFormat, Settings};

const DEFAULT_METRICS_NETWORKS: &str = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16";
const MAX_JWT_LEEWAY: Duration = Duration::from_secs(300);
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A log filter: a level, or comma-separated `target=level` directives (and levels).
/// Anything else is refused: a filter library would read `warning` as a target name and
/// silence every line, the validation failures included.
fn valid_log_filter(filter: &str) -> bool {
    let is_level = |level: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level));
    let is_target = |target: &str| {
        !target.is_empty() && target.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    };
    !filter.trim().is_empty()
        && filter.split(',').map(str::trim).all(|directive| match directive.split_once('=') {
            Some((target, level)) => is_target(target) && is_level(level),
            None => is_level(directive),
        })
}

pub(super) fn load(source: &Source, dev_flag: bool, config_file: Option<PathBuf>) -> Loaded {
    let mut r = Reader::new(source);
    let dev = dev_flag || r.boolean("CHATBOX_DEV", false);

    let mut log_level = r.text("LOG_LEVEL").map_or_else(|| "info".into(), |l| l.to_ascii_lowercase());
    if !valid_log_filter(&log_level) {
        r.fail(
            "LOG_LEVEL",
            format!(
                "{log_level:?} is not a level (error, warn, info, debug, trace, off) or target=level list"
            ),
        );
        log_level = "info".into();
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

    // `--dev` prints live tokens for loopback URLs: it listens on loopback unless told
    // otherwise, so those tokens are not an open door on every interface.
    let default_host = if dev { "127.0.0.1" } else { "0.0.0.0" };
    let server_host = r.text("SERVER_HOST").unwrap_or_else(|| default_host.into());
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
        Some(raw) => match humantime::parse_duration(raw) {
            Ok(leeway) if leeway <= MAX_JWT_LEEWAY => leeway,
            Ok(_) => {
                r.fail("JWT_LEEWAY", "must be at most 5m");
                Duration::from_secs(30)
            }
            Err(_) => {
                r.fail("JWT_LEEWAY", format!("must be a duration such as 30s, got {raw:?}"));
                Duration::from_secs(30)
            }
        },
    };
    let jwt_enforce_expiry_on_open_sockets = r.boolean("JWT_ENFORCE_EXPIRY_ON_OPEN_SOCKETS", true);

    let (origin_name, origins_raw) = source
        .get_any(&["ALLOWED_ORIGINS", "WS_ALLOWED_ORIGINS"])
        .unwrap_or(("ALLOWED_ORIGINS", String::new()));
    let allowed_origins = r.origins(origin_name, super::reader::split_list(&origins_raw));
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
    let storage = storage(&mut r, dev);
    let alerts = alerts(&mut r);
    if r.source.names().any(|name| name == "WS_SEND_QUEUE") {
        r.warnings.push(
            "WS_SEND_QUEUE is no longer read: a socket's queue is bounded in bytes by WS_SEND_BUFFER".into(),
        );
    }
    let csp_frame_ancestors = r.text("CSP_FRAME_ANCESTORS").unwrap_or_else(|| "'self'".to_owned());
    if csp_frame_ancestors.contains([';', ','])
        || csp_frame_ancestors.chars().any(|c| c.is_control() || !c.is_ascii())
    {
        r.fail("CSP_FRAME_ANCESTORS", "must be a CSP source list: ASCII, without ';' or ','");
    }
    let hsts_max_age = r.source.get("HSTS_MAX_AGE").is_some().then(|| r.duration("HSTS_MAX_AGE", "365d"));

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
        csp_frame_ancestors,
        hsts_max_age,
        llm_stream_timeout: r.duration("LLM_STREAM_TIMEOUT", "120s"),
        llm_idle_timeout: r.duration("LLM_IDLE_TIMEOUT", "30s"),
        llm_context_messages: r.number("LLM_CONTEXT_MESSAGES", 20),
        llm_context_max_chars: r.number("LLM_CONTEXT_MAX_CHARS", 24_000),
        llm_system_prompt: r.text("LLM_SYSTEM_PROMPT"),
        llm_max_retries: r.number("LLM_MAX_RETRIES", 2),
        providers,
        storage_backend: storage.backend,
        mongo: storage.mongo,
        encryption: storage.encryption,
        alerts,
        memory_store_max_sessions: r.number("MEMORY_STORE_MAX_SESSIONS", 10_000),
        shutdown_timeout: r.duration("SHUTDOWN_TIMEOUT", "30s"),
        log_level: log_level.clone(),
        log_format,
        ws_ping_interval: r.duration("WS_PING_INTERVAL", "54s"),
        ws_pong_timeout: r.duration("WS_PONG_TIMEOUT", "60s"),
        ws_write_timeout: r.duration("WS_WRITE_TIMEOUT", "10s"),
        ws_send_buffer: r.number("WS_SEND_BUFFER", 262_144),
        ws_command_budget: r.number("WS_COMMAND_BUDGET", 120),
        http_header_read_timeout: r.duration("HTTP_HEADER_READ_TIMEOUT", "10s"),
        http_keepalive_timeout: r.duration("HTTP_KEEPALIVE_TIMEOUT", "60s"),
        http_max_pending_connections: r.number("HTTP_MAX_PENDING_CONNECTIONS", 1024),
        max_answer_chars: r.number("MAX_ANSWER_CHARS", 100_000),
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

#[cfg(test)]
mod tests {
    use super::super::{StorageBackend, load_from};
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
