//! The whole configuration: one section per concern, read in one pass that reports every
//! problem, each naming its variable. Each section reads and checks its own variables
//! (and converts itself into its adapter's configuration) in its own module; this one
//! puts them together, for the service and for `chatbox migrate`, which reads only what
//! it uses.

use std::path::PathBuf;
use std::time::Duration;

use super::alerts::AlertsSection;
use super::auth::AuthSection;
use super::chat::ChatSection;
use super::http::HttpSection;
use super::hub::HubSection;
use super::limits::LimitsSection;
use super::providers::ProvidersSection;
use super::reader::Reader;
use super::source::Source;
use super::storage::StorageSection;
use super::telemetry::{LogFormat, TelemetrySection};
use super::uploads::UploadsSection;

/// Every setting, typed and validated, by section. Each variable belongs to exactly one
/// section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--dev` / `CHATBOX_DEV`.
    pub dev: bool,
    /// `SHUTDOWN_TIMEOUT`.
    pub shutdown_timeout: Duration,
    /// `CHATBOX_CONFIG`, if a file was read.
    pub config_file: Option<PathBuf>,
    /// Listening, origins, proxies, headers, sockets.
    pub http: HttpSection,
    /// Token checking.
    pub auth: AuthSection,
    /// Sessions, answers, context.
    pub chat: ChatSection,
    /// Caps and rates.
    pub limits: LimitsSection,
    /// Where sessions are stored, and their encryption.
    pub storage: StorageSection,
    /// Where replicas share live state.
    pub hub: HubSection,
    /// The model providers.
    pub providers: ProvidersSection,
    /// Admin alerts.
    pub alerts: AlertsSection,
    /// Logging.
    pub telemetry: TelemetrySection,
    /// Files in conversations.
    pub uploads: UploadsSection,
}

/// The result of loading: settings, or every problem found; plus warnings either way.
#[derive(Debug)]
pub struct Loaded<T = Settings> {
    /// The settings, when valid.
    pub settings: Result<T, Vec<String>>,
    /// Things worth a warning that do not stop the start.
    pub warnings: Vec<String>,
    /// `LOG_LEVEL` and `LOG_FORMAT` as far as they could be read (to log the problems).
    pub log_level: String,
    /// See `log_level`.
    pub log_format: LogFormat,
}

impl<T> Loaded<T> {
    /// A source that could not be read at all: that one problem.
    pub(super) fn unreadable(problem: String, dev: bool) -> Self {
        Self {
            settings: Err(vec![problem]),
            warnings: Vec::new(),
            log_level: "info".into(),
            log_format: if dev { LogFormat::Pretty } else { LogFormat::Json },
        }
    }

    fn finish(r: Reader<'_>, settings: T, telemetry: &TelemetrySection) -> Self {
        let settings = if r.errors.is_empty() { Ok(settings) } else { Err(r.errors) };
        Self {
            settings,
            warnings: r.warnings,
            log_level: telemetry.log_level.clone(),
            log_format: telemetry.log_format,
        }
    }
}

/// Reads every section from `source`.
pub(super) fn load(source: &Source, dev_flag: bool, config_file: Option<PathBuf>) -> Loaded {
    let mut r = Reader::new(source);
    let dev = dev_flag || r.boolean("CHATBOX_DEV", false);
    let telemetry = TelemetrySection::read(&mut r, dev);
    let http = HttpSection::read(&mut r, dev);
    let auth = AuthSection::read(&mut r, dev);
    let limits = LimitsSection::read(&mut r);
    let chat = ChatSection::read(&mut r);
    let providers = ProvidersSection::read(&mut r, dev);
    let storage = StorageSection::read(&mut r, dev);
    let hub = HubSection::read(&mut r, dev, storage.backend);
    let alerts = AlertsSection::read(&mut r);
    let uploads = UploadsSection::read(&mut r);
    let shutdown_timeout = r.duration("SHUTDOWN_TIMEOUT", "30s");
    let unread = source.unread_file_keys();
    if !unread.is_empty() {
        r.warnings.push(format!(
            "CHATBOX_CONFIG has keys no setting reads (misspelt, or placed under the wrong [table]?): {}",
            unread.join(", ")
        ));
    }
    let settings = Settings {
        dev,
        shutdown_timeout,
        config_file,
        http,
        auth,
        chat,
        limits,
        storage,
        hub,
        providers,
        alerts,
        telemetry: telemetry.clone(),
        uploads,
    };
    Loaded::finish(r, settings, &telemetry)
}

/// Reads what `chatbox migrate` uses: logging and storage (with `CHATBOX_DEV`, which
/// decides the backend). The other sections are neither read nor checked, so neither
/// are the file keys that belong to them.
pub(super) fn load_storage(source: &Source) -> Loaded<StorageSection> {
    let mut r = Reader::new(source);
    let dev = r.boolean("CHATBOX_DEV", false);
    let telemetry = TelemetrySection::read(&mut r, dev);
    let storage = StorageSection::read(&mut r, dev);
    Loaded::finish(r, storage, &telemetry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::weak_secret_reason;
    use crate::config::{StorageBackend, load_from, load_storage_from};

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
        assert_eq!(settings.http.server_port, 8080);
        assert_eq!(settings.http.chatbox_path_prefix, "/chat");
        assert_eq!(settings.http.max_message_size, 1_048_576);
        assert_eq!(settings.limits.rate_limit, 100);
        assert_eq!(settings.chat.session_ttl, Duration::from_secs(900));
        assert_eq!(settings.chat.share_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(settings.http.metrics_allowed_networks.len(), 5);
        assert_eq!(settings.telemetry.log_format, LogFormat::Json);
        assert_eq!(settings.storage.backend, StorageBackend::Memory);
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(format!("{:?}", settings.auth.jwt_secret), "***");
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
        assert_eq!(settings.http.allowed_origins, ["https://a.example.com", "https://b.example.com:8443"]);
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
        assert_eq!(settings.http.allowed_origins, ["https://app.example.com"]);
        assert_eq!(settings.providers.list[0].delay, Duration::from_millis(30));
        assert_eq!(settings.chat.session_cleanup_interval, Duration::from_secs(300));
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
        assert!(settings.auth.jwt_secret_generated);
        assert_eq!(weak_secret_reason(settings.auth.jwt_secret.expose()), None);
        assert_eq!(settings.providers.list[0].id.as_str(), "demo");
        assert_eq!(settings.telemetry.log_format, LogFormat::Pretty);
        assert_eq!(settings.http.server_host, std::net::IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn the_storage_load_needs_no_provider_and_no_jwt_secret() {
        let uri = [("MONGO_URI", "mongodb://127.0.0.1:27017")];
        let storage = load_storage_from(&uri).settings.expect("storage alone is valid");
        assert_eq!(storage.backend, StorageBackend::MongoDb);
        // The full load refuses the same variables: the service needs both.
        let problems = load_from(&uri, false).settings.expect_err("the service needs more");
        assert!(problems.iter().any(|p| p.starts_with("JWT_SECRET: ")), "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("LLM_PROVIDER_1_ID: ")), "{problems:?}");
        // What does not belong to storage or logging is not even looked at.
        let unrelated = [("JWT_SECRET", "short"), ("SERVER_PORT", "70000"), ("RATE_LIMIT", "0")];
        let loaded = load_storage_from(&[uri[0], unrelated[0], unrelated[1], unrelated[2]]);
        assert!(loaded.settings.is_ok(), "{:?}", loaded.settings.err());
        assert!(loaded.warnings.iter().all(|w| !w.contains("ALLOWED_ORIGINS")), "{:?}", loaded.warnings);
    }

    #[test]
    fn the_storage_load_refuses_bad_storage_and_encryption_and_logging() {
        let problems = load_storage_from(&[
            ("MONGO_URI", "mongodb://127.0.0.1:27017"),
            ("MONGO_DATABASE", "chat.prod"),
            ("ENCRYPTION_KEY", "too-short-key"),
            ("MEMORY_STORE_MAX_SESSIONS", "0"),
            ("LOG_FORMAT", "xml"),
        ])
        .settings
        .expect_err("invalid");
        for variable in
            ["MONGO_DATABASE: ", "ENCRYPTION_KEY: ", "MEMORY_STORE_MAX_SESSIONS: ", "LOG_FORMAT: "]
        {
            assert!(problems.iter().any(|p| p.starts_with(variable)), "{variable} in {problems:?}");
        }
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn every_variable_is_read_by_exactly_one_section() {
        type ReadSection = fn(&mut Reader<'_>);
        let sections: [(&str, ReadSection); 10] = [
            ("telemetry", |r| {
                let _ = TelemetrySection::read(r, false);
            }),
            ("http", |r| {
                let _ = HttpSection::read(r, false);
            }),
            ("auth", |r| {
                let _ = AuthSection::read(r, false);
            }),
            ("limits", |r| {
                let _ = LimitsSection::read(r);
            }),
            ("hub", |r| {
                let _ = HubSection::read(r, false, StorageBackend::MongoDb);
            }),
            ("chat", |r| {
                let _ = ChatSection::read(r);
            }),
            ("providers", |r| {
                let _ = ProvidersSection::read(r, false);
            }),
            ("storage", |r| {
                let _ = StorageSection::read(r, false);
            }),
            ("alerts", |r| {
                let _ = AlertsSection::read(r);
            }),
            ("uploads", |r| {
                let _ = UploadsSection::read(r);
            }),
        ];
        let vars = [
            ("LLM_PROVIDER_1_ID".to_owned(), "demo".to_owned()),
            ("LLM_PROVIDER_1_TYPE".to_owned(), "demo".to_owned()),
        ];
        let mut owners: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
        for (section, read) in sections {
            let source = Source::new(vars.clone(), None).expect("source");
            read(&mut Reader::new(&source));
            for name in source.asked_names() {
                let name = name.replace("LLM_PROVIDER_1_", "LLM_PROVIDER_<N>_");
                if let Some(other) = owners.insert(name.clone(), section) {
                    assert_eq!(other, section, "{name} is read by both {other} and {section}");
                }
            }
        }
        let mut read: Vec<String> = owners.into_keys().collect();
        read.extend(["CHATBOX_CONFIG", "CHATBOX_DEV", "SHUTDOWN_TIMEOUT"].map(str::to_owned));
        read.sort();
        assert_eq!(
            read,
            crate::config::variables_read(),
            "the sections and the top level read every variable"
        );
    }
}
