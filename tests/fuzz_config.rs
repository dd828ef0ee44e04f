//! Property-based fuzzing of configuration parsing: `config::load_from` (the
//! environment) and `config::source::Source` over a TOML file (`CHATBOX_CONFIG`).
//!
//! Proves, for arbitrary values of every variable the configuration reads (the names
//! come from `config::variables_read()`, so a new variable is fuzzed without touching
//! this file) and for arbitrary TOML text, that loading never panics and:
//! - every problem is one line that starts with the name of a variable (`NAME: …`);
//!   when a single variable of a valid set is changed, every problem names that
//!   variable or one its rule is tied to (e.g. `SESSION_TTL` and
//!   `SESSION_CLEANUP_INTERVAL`);
//! - no secret value appears in a problem or a warning;
//! - a valid set loads, with the values it was given;
//! - a TOML file either fails with one message starting with `CHATBOX_CONFIG` or yields
//!   its keys flattened to variable names (`[server] port` is `SERVER_PORT`), the
//!   environment winning.
//!
//! Case counts: `tests/support/fuzz.rs`.

#[path = "support/fuzz.rs"]
mod fuzz;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatbox::config::{self, source::Source};
use proptest::prelude::*;

/// A strong secret (no weak pattern, many distinct characters).
const SECRET: &str = "fuzz-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5hGcDaQ";
/// Put in every secret value the harness writes, to find it in the output.
const SECRET_MARK: &str = "Zx9SeKrEtQ7";
/// Variables whose value is a secret: never echoed.
fn is_secret(name: &str) -> bool {
    [
        "JWT_SECRET",
        "SMTP_PASS",
        "SMS_AUTH_TOKEN",
        "SMS_API_KEY",
        "ENCRYPTION_KEY",
        "ENCRYPTION_OLD_KEYS",
        "MONGO_URI",
    ]
    .contains(&name)
        || name.ends_with("_API_KEY")
}

/// Every variable name, with `LLM_PROVIDER_<N>_…` instantiated for `n`.
fn names_for(n: &str) -> Vec<String> {
    config::variables_read().into_iter().map(|name| name.replace("<N>", n)).collect()
}

/// True for a name the configuration reads (any provider number).
fn is_variable(name: &str) -> bool {
    let known = config::variables_read();
    if known.iter().any(|k| k == name) {
        return true;
    }
    name.strip_prefix("LLM_PROVIDER_").and_then(|rest| rest.split_once('_')).is_some_and(|(n, field)| {
        n.parse::<u64>().is_ok() && known.iter().any(|k| *k == format!("LLM_PROVIDER_<N>_{field}"))
    })
}

/// The variable a problem names: the text before its first `": "`.
fn named(problem: &str) -> Option<&str> {
    problem.split_once(": ").map(|(name, _)| name)
}

/// Every problem is one line naming a variable (one of the configuration's, or one of
/// the names that were set, e.g. a misnumbered provider variable), and no secret leaks.
fn check_report(vars: &[(String, String)], loaded: &config::Loaded) -> Result<(), TestCaseError> {
    // Names are read case-insensitively (the environment's are upper-cased).
    let set: BTreeSet<String> = vars.iter().map(|(k, _)| k.to_ascii_uppercase()).collect();
    if let Err(problems) = &loaded.settings {
        prop_assert!(!problems.is_empty(), "refused without a reason");
        for problem in problems {
            prop_assert!(!problem.contains('\n') && !problem.contains('\r'), "not one line: {problem:?}");
            let name = named(problem);
            prop_assert!(
                name.is_some_and(|n| is_variable(n) || set.contains(n)),
                "{problem:?} does not start with a variable's name"
            );
        }
    }
    let problems = loaded.settings.as_ref().err().cloned().unwrap_or_default();
    for line in problems.iter().chain(&loaded.warnings) {
        prop_assert!(!line.contains(SECRET_MARK), "a secret value reached the output: {line:?}");
    }
    Ok(())
}

fn load(vars: &[(String, String)], dev: bool) -> config::Loaded {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    config::load_from(&pairs, dev)
}

// ---------------------------------------------------------------------------------
// Values.
// ---------------------------------------------------------------------------------

/// Any value a variable could be given: text, numbers of every size and sign,
/// durations right and wrong, lists, whitespace, control characters.
fn any_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "\\PC{0,20}",
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| f.to_string()),
        1 => prop::sample::select(vec![
            "", " ", "0", "-0", "+5", "1e3", "18446744073709551616", "99999999999999999999999999",
            "true", "FALSE", "yes", "on", "2", "0s", "0ms", "1ns", "30", "5m", "1h30m", "9999999999999h",
            "18446744073709551615s", "600000000y", "-1s", "1.5s", "*", "https://a.example.com",
            "https://a.example.com/path", "10.0.0.0/8", "10.0.0.0/33", "::1", "0.0.0.0", "demo", "openai",
            "anthropic", "dify", "memory", "mongodb", "mongodb://u:p@db:27017", "HS256,HS512", "RS256",
            "json", "pretty", "debug", "chatbox=trace,warn", "[", "a\nb", "a\u{0}b", "é", "+15551234567",
            "a@b.c", "twilio", "starttls",
        ])
        .prop_map(str::to_owned),
        1 => ("[1-9][0-9]{0,4}", prop::sample::select(vec!["ms", "s", "m", "h", "d", "", "x"]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
    ]
    .boxed()
}

fn durations_between(min_ms: u64, max_ms: u64) -> BoxedStrategy<Duration> {
    (min_ms..=max_ms).prop_map(Duration::from_millis).boxed()
}

/// A duration as an operator writes it (`humantime`).
fn written(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn bool_word() -> BoxedStrategy<(bool, String)> {
    prop::sample::select(vec![
        (true, "true"),
        (true, "TRUE"),
        (true, "1"),
        (true, "yes"),
        (true, "On"),
        (false, "false"),
        (false, "0"),
        (false, "no"),
        (false, "OFF"),
    ])
    .prop_map(|(b, w)| (b, w.to_owned()))
    .boxed()
}

fn origins() -> BoxedStrategy<String> {
    prop::collection::vec(
        ("[a-z]{1,8}", prop::option::of(1u16..)).prop_map(|(host, port)| match port {
            Some(port) => format!("https://{host}.example.com:{port}"),
            None => format!("https://{host}.example.com"),
        }),
        0..3,
    )
    .prop_map(|list| list.join(", "))
    .boxed()
}

fn cidrs() -> BoxedStrategy<String> {
    prop::collection::vec(
        prop_oneof![
            (any::<[u8; 4]>(), 0u8..=32)
                .prop_map(|(ip, bits)| format!("{}.{}.{}.{}/{bits}", ip[0], ip[1], ip[2], ip[3])),
            any::<[u8; 4]>().prop_map(|ip| format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])),
            Just("::1/128".to_owned()),
            Just("fd00::/8".to_owned()),
        ],
        0..3,
    )
    .prop_map(|list| list.join(","))
    .boxed()
}

/// One provider block, valid on its own: its variables and its id.
fn provider(n: usize) -> BoxedStrategy<Vec<(String, String)>> {
    let kind = prop::sample::select(vec!["demo", "openai", "anthropic", "dify", "DEMO"]);
    (
        kind,
        prop::option::of("[A-Za-z ]{1,12}"),
        prop::option::of(1u32..100_000),
        prop::option::of(0u32..=20),
        prop::option::of(0u64..2000),
        prop::sample::select(vec![
            "https://api.example.com/v1",
            "http://127.0.0.1:11434/v1",
            "http://ollama:11434",
            "http://vllm.ml.svc",
        ]),
    )
        .prop_map(move |(kind, name, max_tokens, temperature, delay, endpoint)| {
            let var = |field: &str| format!("LLM_PROVIDER_{n}_{field}");
            let mut vars = vec![(var("ID"), format!("model-{n}")), (var("TYPE"), kind.to_owned())];
            if kind.eq_ignore_ascii_case("demo") {
                if let Some(delay) = delay {
                    vars.push((var("DELAY"), format!("{delay}ms")));
                }
            } else {
                vars.push((var("ENDPOINT"), endpoint.to_owned()));
                vars.push((var("API_KEY"), format!("sk-{SECRET_MARK}-{n}")));
                vars.push((var("MODEL"), "some-model".to_owned()));
            }
            if let Some(name) = name {
                vars.push((var("NAME"), name));
            }
            if let Some(max_tokens) = max_tokens {
                vars.push((var("MAX_TOKENS"), max_tokens.to_string()));
            }
            if let Some(t) = temperature {
                vars.push((var("TEMPERATURE"), format!("{}", f64::from(t) / 10.0)));
            }
            vars
        })
        .boxed()
}

/// A valid configuration: providers, and a random subset of the other variables with
/// valid values (related ones kept consistent). Returns the variables and the values
/// the settings must then hold.
/// Variables as set, and the values the settings must then hold.
type ValidSet = (Vec<(String, String)>, BTreeMap<&'static str, String>);

fn valid_set() -> BoxedStrategy<ValidSet> {
    let providers = (1usize..=3).prop_flat_map(|count| {
        let blocks: Vec<_> = (1..=count).map(provider).collect();
        (blocks, prop::option::of(prop::sample::select((1..=count).collect::<Vec<_>>()))).prop_map(
            move |(blocks, fallback_of_first)| {
                let mut vars: Vec<(String, String)> = blocks.into_iter().flatten().collect();
                if let Some(target) = fallback_of_first.filter(|&t| t != 1) {
                    vars.push(("LLM_PROVIDER_1_FALLBACK".into(), format!("model-{target}")));
                }
                vars
            },
        )
    });
    let timing = (
        durations_between(1, 3_600_000),
        durations_between(1, 3_600_000),
        durations_between(1, 600_000),
        durations_between(1, 600_000),
    );
    let numbers =
        (1u64..=1_000_000, 1024u64..=16_777_216, 8u64..=65_536, 1u64..=100, 0u64..=10, 1u64..=100_000);
    let others = (
        prop::option::of(prop_oneof![
            Just("127.0.0.1".to_owned()),
            Just("::".to_owned()),
            Just("0.0.0.0".to_owned())
        ]),
        prop::option::of(any::<u16>()),
        prop::option::of("/[a-z0-9._~-]{1,8}(/[a-z0-9]{1,4})?"),
        prop::option::of(prop::sample::subsequence(vec!["HS256", "hs384", "HS512"], 1..=3)),
        prop::option::of(bool_word()),
        prop::option::of(0u64..=300),
        prop::option::of(origins()),
        prop::option::of(cidrs()),
        prop::option::of(prop::sample::select(vec![
            "error",
            "warn",
            "info",
            "debug",
            "trace",
            "chatbox=debug,warn",
        ])),
        prop::option::of(prop::sample::select(vec!["json", "pretty", "text", "JSON"])),
    );
    (providers, timing, numbers, others, any::<u64>())
        .prop_map(|(providers, (ttl, cleanup, pong, ping), numbers, others, pick)| {
            let (host, port, prefix, algorithms, require_exp, leeway, allowed, proxies, level, format) =
                others;
            let (connections, message_size, send_queue, queue_limit, retries, content_chars) = numbers;
            let mut vars = vec![("JWT_SECRET".to_owned(), format!("{SECRET}{SECRET_MARK}"))];
            vars.extend(providers);
            let mut expect: BTreeMap<&'static str, String> = BTreeMap::new();
            // The cleanup interval may not exceed the TTL (defaults 5m and 15m): a TTL
            // is only ever set together with an interval no longer than it.
            let (ttl, cleanup) = (ttl.max(cleanup), ttl.min(cleanup).min(Duration::from_secs(300)));
            if pick & 1 == 1 {
                for (name, value) in
                    [("SESSION_TTL", written(ttl)), ("SESSION_CLEANUP_INTERVAL", written(cleanup))]
                {
                    vars.push((name.to_owned(), value.clone()));
                    expect.insert(name, value);
                }
            }
            // Each optional variable is set or left to its default, by a bit of `pick`.
            let mut bit = 0;
            let mut maybe = |name: &'static str, value: String, vars: &mut Vec<(String, String)>| {
                bit += 1;
                if pick >> (bit % 64) & 1 == 1 {
                    vars.push((name.to_owned(), value.clone()));
                    expect.insert(name, value);
                }
            };
            let (pong, ping) = (pong.max(ping) + Duration::from_millis(1), pong.min(ping));
            maybe("WS_PONG_TIMEOUT", written(pong.max(Duration::from_secs(55))), &mut vars);
            maybe("WS_PING_INTERVAL", written(ping.min(Duration::from_secs(54))), &mut vars);
            maybe("MAX_CONNECTIONS", connections.to_string(), &mut vars);
            maybe("MAX_CONNECTIONS_PER_USER", (connections % 50 + 1).to_string(), &mut vars);
            maybe("MAX_MESSAGE_SIZE", message_size.to_string(), &mut vars);
            maybe("MAX_CONTENT_CHARS", content_chars.to_string(), &mut vars);
            maybe("WS_SEND_QUEUE", send_queue.to_string(), &mut vars);
            maybe("ANSWER_QUEUE_LIMIT", queue_limit.to_string(), &mut vars);
            maybe("LLM_MAX_RETRIES", retries.to_string(), &mut vars);
            maybe("RATE_LIMIT", (connections % 1000 + 1).to_string(), &mut vars);
            maybe("RATE_WINDOW", written(ttl), &mut vars);
            maybe("LLM_STREAM_TIMEOUT", written(pong), &mut vars);
            maybe("LLM_IDLE_TIMEOUT", written(ping), &mut vars);
            maybe("SHUTDOWN_TIMEOUT", written(cleanup), &mut vars);
            maybe("LLM_SYSTEM_PROMPT", "Be brief.".to_owned(), &mut vars);
            maybe("STORAGE_BACKEND", "memory".to_owned(), &mut vars);
            for (name, value) in [
                ("SERVER_HOST", host),
                ("SERVER_PORT", port.map(|p| p.to_string())),
                ("CHATBOX_PATH_PREFIX", prefix),
                ("JWT_ALGORITHMS", algorithms.map(|a| a.join(","))),
                ("JWT_REQUIRE_EXP", require_exp.map(|(_, word)| word)),
                ("JWT_LEEWAY", leeway.map(|s| format!("{s}s"))),
                ("ALLOWED_ORIGINS", allowed),
                ("TRUSTED_PROXIES", proxies),
                ("LOG_LEVEL", level.map(str::to_owned)),
                ("LOG_FORMAT", format.map(str::to_owned)),
            ] {
                if let Some(value) = value {
                    vars.push((name.to_owned(), value.clone()));
                    expect.insert(name, value);
                }
            }
            (vars, expect)
        })
        .boxed()
}

/// The variables a problem caused by `changed` may name besides `changed` itself:
/// those its rule is tied to.
fn tied_to(changed: &str) -> Vec<String> {
    let pairs: &[(&str, &[&str])] = &[
        ("SESSION_TTL", &["SESSION_CLEANUP_INTERVAL"]),
        ("WS_PONG_TIMEOUT", &["WS_PING_INTERVAL"]),
        ("EMAIL_FROM", &["SMTP_HOST"]),
        ("SMTP_USER", &["SMTP_HOST"]),
        ("SMTP_PASS", &["SMTP_HOST", "SMTP_USER"]),
        ("SMS_AUTH_TOKEN", &["SMS_ACCOUNT_SID"]),
        ("SMS_API_KEY", &["SMS_ACCOUNT_SID"]),
        ("SMS_FROM", &["SMS_ACCOUNT_SID"]),
        ("SMS_PROVIDER", &["SMS_ACCOUNT_SID"]),
        ("ENCRYPTION_KEY", &["ENCRYPTION_OLD_KEYS", "ENCRYPTION_KEY_ID"]),
        ("ENCRYPTION_KEY_ID", &["ENCRYPTION_KEY"]),
        ("MONGO_URI", &["STORAGE_BACKEND"]),
        ("STORAGE_BACKEND", &["MONGO_URI"]),
        ("MONGO_RETRY_MAX_DELAY", &["MONGO_RETRY_DELAY"]),
        ("CHATBOX_DEV", &["JWT_SECRET", "LLM_PROVIDER_1_ID", "STORAGE_BACKEND"]),
    ];
    let mut tied: Vec<String> = pairs
        .iter()
        .filter(|(name, _)| *name == changed)
        .flat_map(|(_, t)| t.iter().map(|s| (*s).to_owned()))
        .collect();
    if changed.starts_with("LLM_PROVIDER_") {
        // A provider's id, type and fallback decide what its block and the others need.
        for n in 1..=4 {
            for field in ["ID", "TYPE", "ENDPOINT", "API_KEY", "MODEL", "DELAY", "FALLBACK"] {
                tied.push(format!("LLM_PROVIDER_{n}_{field}"));
            }
        }
    }
    tied
}

/// Every variable, with provider blocks 1 and 2.
fn all_names() -> Vec<String> {
    let mut names: BTreeSet<String> = names_for("1").into_iter().collect();
    names.extend(names_for("2"));
    names.remove("CHATBOX_CONFIG");
    names.into_iter().collect()
}

/// A variable name, mostly one the configuration reads.
fn any_name() -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop::sample::select(all_names()),
        1 => (
            prop::sample::select(vec!["0", "x", "01", "-1", "99999999999999999999999", "", "1_2"]),
            prop::sample::select(names_for("<N>").into_iter().filter(|n| n.contains("<N>")).collect::<Vec<_>>()),
        )
            .prop_map(|(n, name)| name.replace("<N>", n)),
        1 => "[A-Z_]{1,12}",
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------
// TOML.
// ---------------------------------------------------------------------------------

/// A scalar as TOML text and the value the configuration reads for it.
fn toml_scalar() -> BoxedStrategy<(String, String)> {
    prop_oneof![
        "[a-zA-Z0-9 ./:_-]{0,16}".prop_map(|s| (format!("{s:?}"), s)),
        any::<i64>().prop_map(|n| (n.to_string(), n.to_string())),
        any::<bool>().prop_map(|b| (b.to_string(), b.to_string())),
        (-1000i32..1000).prop_map(|n| (format!("{n}.5"), format!("{n}.5"))),
        prop::collection::vec("[a-z0-9:/.]{1,8}", 0..4).prop_map(|items| {
            (
                format!("[{}]", items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ")),
                items.join(","),
            )
        }),
        Just(("1979-05-27T07:32:00Z".to_owned(), "1979-05-27T07:32:00Z".to_owned())),
    ]
    .boxed()
}

/// A TOML document of flat keys and one-level groups, with the variables it defines.
fn toml_document() -> BoxedStrategy<(String, BTreeMap<String, String>)> {
    let flat = prop::collection::btree_map("[a-z]{1,6}(_[a-z]{1,6})?", toml_scalar(), 0..6);
    let groups = prop::collection::btree_map(
        "grp[a-z]{1,4}",
        prop::collection::btree_map("[a-z]{1,6}", toml_scalar(), 0..4),
        0..3,
    );
    (flat, groups)
        .prop_map(|(flat, groups)| {
            let mut text = String::new();
            let mut expect = BTreeMap::new();
            for (key, (raw, value)) in &flat {
                text.push_str(&format!("{key} = {raw}\n"));
                expect.insert(key.to_ascii_uppercase(), value.clone());
            }
            for (group, keys) in &groups {
                text.push_str(&format!("[{group}]\n"));
                for (key, (raw, value)) in keys {
                    text.push_str(&format!("{key} = {raw}\n"));
                    expect.insert(format!("{group}_{key}").to_ascii_uppercase(), value.clone());
                }
            }
            (text, expect)
        })
        .boxed()
}

/// A file of its own for each call (cases of several properties run in parallel).
fn temp_file(text: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("chatbox-fuzz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{}.toml", NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, text).expect("write");
    path
}

fn with_file<T>(text: &str, run: impl FnOnce(&std::path::Path) -> T) -> T {
    let path = temp_file(text);
    let result = run(&path);
    let _ = std::fs::remove_file(&path);
    result
}

/// A file that cannot be used fails with one message naming `CHATBOX_CONFIG`.
fn check_file_error(result: &Result<Source, String>) -> Result<(), TestCaseError> {
    if let Err(problem) = result {
        prop_assert!(problem.starts_with("CHATBOX_CONFIG: "), "{problem:?}");
        prop_assert!(!problem.contains('\n') || problem.lines().count() > 0);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(fuzz::config(256))]

    /// Arbitrary values for arbitrary variables: reported, never a panic.
    #[test]
    fn arbitrary_values_are_reported_by_variable(
        vars in prop::collection::vec((any_name(), any_value()), 0..24),
        secrets in prop::collection::vec(prop::sample::select(all_names().into_iter().filter(|n| is_secret(n)).collect::<Vec<_>>()), 0..3),
        dev in any::<bool>(),
    ) {
        let mut vars = vars;
        vars.retain(|(name, _)| !is_secret(name));
        vars.extend(secrets.into_iter().map(|name| (name, format!("{SECRET_MARK}-value"))));
        let loaded = load(&vars, dev);
        check_report(&vars, &loaded)?;
    }

    /// A valid set loads, with the values it was given.
    #[test]
    fn a_valid_set_loads((vars, expect) in valid_set(), dev in any::<bool>()) {
        let loaded = load(&vars, dev);
        check_report(&vars, &loaded)?;
        let settings = match loaded.settings {
            Ok(settings) => settings,
            Err(problems) => return Err(TestCaseError::fail(format!("{vars:?} refused: {problems:?}"))),
        };
        let duration = |name: &str| expect.get(name).map(|v| humantime::parse_duration(v).expect("written by the test"));
        if let Some(port) = expect.get("SERVER_PORT") {
            prop_assert_eq!(settings.http.server_port.to_string(), port.clone());
        }
        if let Some(ttl) = duration("SESSION_TTL") {
            prop_assert_eq!(settings.chat.session_ttl, ttl);
        }
        if let Some(ping) = duration("WS_PING_INTERVAL") {
            prop_assert_eq!(settings.http.ws_ping_interval, ping);
        }
        if let Some(size) = expect.get("MAX_MESSAGE_SIZE") {
            prop_assert_eq!(settings.http.max_message_size.to_string(), size.clone());
        }
        if let Some(leeway) = expect.get("JWT_LEEWAY") {
            prop_assert_eq!(format!("{}s", settings.auth.jwt_leeway.as_secs()), leeway.clone());
        }
        let ids: Vec<String> = vars.iter().filter(|(k, _)| k.ends_with("_ID") && k.starts_with("LLM_PROVIDER_")).map(|(_, v)| v.clone()).collect();
        let got: Vec<String> = settings.providers.list.iter().map(|p| p.id.to_string()).collect();
        prop_assert_eq!(got, ids, "every provider, in order");
    }

    /// One variable of a valid set changed to anything: the set still loads, or every
    /// problem names that variable or one its rule is tied to.
    #[test]
    fn a_problem_names_the_variable_that_caused_it(
        (vars, _) in valid_set(),
        name in any_name(),
        value in any_value(),
    ) {
        let mut vars = vars;
        vars.retain(|(k, _)| *k != name);
        vars.push((name.clone(), value));
        // Two spellings of one setting are one variable.
        let aliases = if name == "ALLOWED_ORIGINS" || name == "WS_ALLOWED_ORIGINS" { vec!["ALLOWED_ORIGINS".to_owned(), "WS_ALLOWED_ORIGINS".to_owned()] } else { Vec::new() };
        let loaded = load(&vars, false);
        check_report(&vars, &loaded)?;
        if let Err(problems) = &loaded.settings {
            let name = name.to_ascii_uppercase();
            let tied = tied_to(&name);
            for problem in problems {
                let n = named(problem).unwrap_or_default();
                prop_assert!(
                    n == name || tied.iter().any(|t| t == n) || aliases.iter().any(|a| a == n),
                    "changing {name} gave {problem:?}"
                );
            }
        }
    }

    /// Arbitrary text as the configuration file: one `CHATBOX_CONFIG` message, or a
    /// source; never a panic.
    #[test]
    fn arbitrary_toml_text_never_panics(text in "\\PC{0,80}|([a-z_\\[\\]=\"., 0-9{}\n-]{0,80})") {
        let result = with_file(&text, |path| Source::new(Vec::new(), Some(path)));
        check_file_error(&result)?;
    }

    /// Well-formed files: every key flattened to its variable, the environment first;
    /// a table nested in a group refused with a message naming `CHATBOX_CONFIG`.
    #[test]
    fn toml_documents_flatten_to_variables(
        (text, expect) in toml_document(),
        env in prop::collection::btree_map("[A-Z]{1,6}(_[A-Z]{1,6})?", "[a-z0-9]{1,6}", 0..4),
        nested in prop::option::weighted(0.1, "[a-z]{1,4}"),
    ) {
        let text = match &nested {
            Some(key) => format!("{text}[deep.{key}]\nx = 1\n"),
            None => text,
        };
        let env_pairs: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let result = with_file(&text, |path| Source::new(env_pairs, Some(path)));
        check_file_error(&result)?;
        if nested.is_some() {
            prop_assert!(result.is_err(), "a table nested in a group is refused:\n{text}");
            return Ok(());
        }
        let source = match result {
            Ok(source) => source,
            Err(problem) => return Err(TestCaseError::fail(format!("{problem}\n{text}"))),
        };
        for (name, value) in &expect {
            let wanted = env.get(name).unwrap_or(value).trim();
            let wanted = (!wanted.is_empty()).then_some(wanted);
            prop_assert_eq!(source.get(name), wanted, "{}\n{}", name, text);
        }
        for (name, value) in &env {
            prop_assert_eq!(source.get(name), Some(value.as_str()), "the environment wins");
        }
    }
}

/// The harness knows every variable: the arbitrary-value property draws from this list,
/// so a variable missing here would never be fuzzed.
#[test]
fn every_variable_read_is_fuzzed() {
    let names = config::variables_read();
    assert!(names.len() > 60, "{names:?}");
    let fuzzed: BTreeSet<String> = all_names().into_iter().collect();
    for name in names {
        let name = name.replace("<N>", "1");
        assert!(name == "CHATBOX_CONFIG" || fuzzed.contains(&name), "{name} is not fuzzed");
    }
}

/// Hand-picked cases: extreme values found by the properties, and each tied pair.
#[test]
fn regression_and_boundary_cases() {
    let base: Vec<(String, String)> = vec![
        ("JWT_SECRET".into(), SECRET.into()),
        ("LLM_PROVIDER_1_ID".into(), "demo".into()),
        ("LLM_PROVIDER_1_TYPE".into(), "demo".into()),
    ];
    assert!(load(&base, false).settings.is_ok());
    for (name, value) in [
        ("SESSION_TTL", "1s"),
        ("WS_PONG_TIMEOUT", "1s"),
        ("LLM_STREAM_TIMEOUT", "9999999999999h"),
        ("LLM_STREAM_TIMEOUT", "18446744073709551615s"),
        ("JWT_LEEWAY", "18446744073709551615s"),
        ("MAX_MESSAGE_SIZE", "18446744073709551616"),
        ("SERVER_PORT", "65536"),
        ("SERVER_PORT", "-1"),
        ("LLM_PROVIDER_99999999999999999999999_ID", "x"),
        ("LLM_PROVIDER_0_ID", "x"),
        ("LLM_PROVIDER_1_TEMPERATURE", "NaN"),
        ("LLM_PROVIDER_1_TEMPERATURE", "inf"),
        ("LLM_PROVIDER_1_ID", "a\nb"),
        ("LOG_LEVEL", "a\nb"),
        ("ALLOWED_ORIGINS", "https://a.example.com\nb"),
        ("EMAIL_FROM", "a@b.c"),
        ("MONGO_RETRY_MAX_DELAY", "1ms"),
        ("LLM_PROVIDER_x_DELAY", ""),
        ("SMTP_USER", "u"),
        ("SMS_API_KEY", "k"),
    ] {
        let mut vars = base.clone();
        vars.retain(|(k, _)| k != name);
        vars.push((name.to_owned(), value.to_owned()));
        let loaded = load(&vars, false);
        check_report(&vars, &loaded).unwrap_or_else(|e| panic!("{name}={value:?}: {e}"));
    }
}
