//! The deployment manifests agree with the service: the ConfigMap and the Secret template
//! name exactly the variables the configuration reads, the ConfigMap's values are the
//! built-in defaults, the Deployments leave the service time to drain and probe the
//! right paths, the kustomize components change only ConfigMap keys that exist, to values
//! the service accepts, and `create-secret.sh` refuses exactly the JWT secrets the service
//! refuses. (Whether each combination of components lets the pods reach what its
//! configuration names is checked by `scripts/check-deployments.sh`, which renders them.)
//!
//! The manifests are read with a small line parser rather than a YAML library: their
//! `data:` blocks are flat `KEY: "value"` lines by design, and the parser refuses any
//! other line there, so a construct it cannot read fails the test instead of being
//! skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chatbox::config::{StorageBackend, WEAK_PATTERNS, load_from, variables_read, weak_secret_reason};

/// Variables the service reads that the cluster manifests leave out on purpose.
const NOT_IN_MANIFESTS: &[(&str, &str)] = &[
    ("CHATBOX_DEV", "the one-machine trial mode (random secret, demo model); never in a cluster"),
    ("CHATBOX_CONFIG", "a TOML file as a second source; the manifests use the environment only"),
    ("WS_ALLOWED_ORIGINS", "an alias of ALLOWED_ORIGINS, kept for the earlier service's deployments"),
    ("SMS_API_KEY", "an alias of SMS_AUTH_TOKEN, kept for the earlier service's deployments"),
];

/// ConfigMap values that deliberately differ from the built-in default, and why.
const NOT_DEFAULT: &[(&str, &str)] = &[
    ("ALLOWED_ORIGINS", "a placeholder origin: empty would accept sockets from any origin"),
    ("UPLOAD_DIR", "the pod's writable volume: its root filesystem is read-only"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn kubernetes(file: &str) -> PathBuf {
    root().join("deployments/kubernetes").join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `KEY: "value"` lines of the top-level block `block:` of a manifest, in order.
/// Comments and blank lines are skipped; any other line inside the block is an error.
fn flat_block(path: &Path, block: &str) -> Vec<(String, String)> {
    let text = read(path);
    let mut lines = text.lines().enumerate().skip_while(|(_, line)| *line != format!("{block}:"));
    assert!(lines.next().is_some(), "{}: no top-level `{block}:` block", path.display());
    let mut entries = Vec::new();
    for (number, line) in lines {
        let content = line.split(" #").next().unwrap_or_default().trim_end();
        if content.trim_start().starts_with('#') || content.is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            break;
        }
        let parsed = content.strip_prefix("  ").and_then(|entry| {
            let (key, value) = entry.split_once(": ")?;
            let value = value.strip_prefix('"')?.strip_suffix('"')?;
            let plain_key = !key.is_empty()
                && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            (plain_key && !value.contains(['"', '\\'])).then(|| (key.to_owned(), value.to_owned()))
        });
        match parsed {
            Some(entry) => entries.push(entry),
            None => panic!(
                "{}:{}: expected `  KEY: \"value\"` in `{block}:`, found {line:?}",
                path.display(),
                number + 1
            ),
        }
    }
    assert!(!entries.is_empty(), "{}: `{block}:` is empty", path.display());
    entries
}

fn configmap() -> Vec<(String, String)> {
    flat_block(&kubernetes("configmap.yaml"), "data")
}

fn secret_template() -> Vec<(String, String)> {
    flat_block(&kubernetes("secret.example.yaml"), "stringData")
}

/// `LLM_PROVIDER_7_API_KEY` → `LLM_PROVIDER_<N>_API_KEY`, as `variables_read` writes it.
fn generic(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("LLM_PROVIDER_")
        && let Some((number, field)) = rest.split_once('_')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
    {
        return format!("LLM_PROVIDER_<N>_{field}");
    }
    name.to_owned()
}

fn names(entries: &[(String, String)]) -> BTreeSet<String> {
    entries.iter().map(|(key, _)| generic(key)).collect()
}

fn assert_no_duplicates(entries: &[(String, String)], file: &str) {
    let mut seen = BTreeSet::new();
    for (key, _) in entries {
        assert!(seen.insert(key), "{file}: {key} appears twice");
    }
}

#[test]
fn the_manifests_name_exactly_the_variables_the_service_reads() {
    let read: BTreeSet<String> = variables_read().into_iter().collect();
    let (configmap, secret) = (configmap(), secret_template());
    assert_no_duplicates(&configmap, "configmap.yaml");
    assert_no_duplicates(&secret, "secret.example.yaml");
    let (in_configmap, in_secret) = (names(&configmap), names(&secret));

    let both: Vec<_> = in_configmap.intersection(&in_secret).collect();
    assert!(both.is_empty(), "in both the ConfigMap and the Secret (the Secret would win): {both:?}");

    let left_out: BTreeSet<String> = NOT_IN_MANIFESTS.iter().map(|(name, _)| (*name).to_owned()).collect();
    let stale: Vec<_> = left_out.difference(&read).collect();
    assert!(stale.is_empty(), "NOT_IN_MANIFESTS lists variables the service no longer reads: {stale:?}");

    let unknown: Vec<_> = in_configmap.union(&in_secret).filter(|name| !read.contains(*name)).collect();
    assert!(unknown.is_empty(), "the manifests set variables the service does not read: {unknown:?}");

    let missing: Vec<_> = read
        .iter()
        .filter(|name| {
            !in_configmap.contains(*name) && !in_secret.contains(*name) && !left_out.contains(*name)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the service reads variables that neither configmap.yaml nor secret.example.yaml carries: {missing:?}"
    );
}

/// The variables that hold secrets: the Secret carries them, the ConfigMap never does,
/// and `create-secret.sh` takes each from the environment.
const SECRETS: &[&str] = &[
    "JWT_SECRET",
    "LLM_PROVIDER_<N>_API_KEY",
    "MONGO_URI",
    "ENCRYPTION_KEY",
    "ENCRYPTION_OLD_KEYS",
    "REDIS_URL",
    "SMTP_PASS",
    "SMS_AUTH_TOKEN",
    "UPLOAD_S3_ACCESS_KEY_ID",
    "UPLOAD_S3_SECRET_ACCESS_KEY",
];

#[test]
fn secrets_are_in_the_secret_and_only_there() {
    let secrets: BTreeSet<String> = SECRETS.iter().map(|name| (*name).to_owned()).collect();
    assert_eq!(names(&secret_template()), secrets, "secret.example.yaml must carry exactly the secrets");
    let leaked: Vec<_> = names(&configmap()).intersection(&secrets).cloned().collect();
    assert!(leaked.is_empty(), "secrets in the ConfigMap: {leaked:?}");
    let script = read(&kubernetes("create-secret.sh"));
    for name in SECRETS {
        let spelled = name.replace("LLM_PROVIDER_<N>_API_KEY", "^LLM_PROVIDER_[1-9][0-9]*_API_KEY$");
        assert!(script.contains(&spelled), "create-secret.sh does not take {name} from the environment");
    }
}

#[test]
fn the_configmap_holds_the_built_in_defaults_and_starts_the_service() {
    const GOOD_SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";
    let configmap = configmap();
    let mut with_configmap: Vec<(&str, &str)> = vec![("JWT_SECRET", GOOD_SECRET)];
    let mut defaults_only: Vec<(&str, &str)> = vec![("JWT_SECRET", GOOD_SECRET)];
    for (key, value) in &configmap {
        with_configmap.push((key, value));
        if NOT_DEFAULT.iter().any(|(name, _)| name == key) {
            defaults_only.push((key, value));
        } else if key.starts_with("LLM_PROVIDER_") {
            // The provider block has no built-in default outside --dev: it is required.
            defaults_only.push((key, value));
        }
    }
    let loaded = load_from(&with_configmap, false);
    let settings = match loaded.settings {
        Ok(settings) => settings,
        Err(problems) => panic!("the ConfigMap does not pass the service's validation: {problems:?}"),
    };
    let defaults = load_from(&defaults_only, false).settings.expect("defaults are valid");
    assert_eq!(
        format!("{settings:#?}"),
        format!("{defaults:#?}"),
        "a ConfigMap value differs from the service's default (list it in NOT_DEFAULT with the reason if that is deliberate)"
    );
}

#[test]
fn the_secret_template_cannot_start_the_service_as_it_is() {
    let secret: BTreeMap<String, String> = secret_template().into_iter().collect();
    let placeholder = secret.get("JWT_SECRET").expect("the template names JWT_SECRET");
    assert!(
        weak_secret_reason(placeholder).is_some(),
        "the template's JWT_SECRET placeholder must be one the service refuses"
    );
    for (key, value) in &secret {
        assert!(key == "JWT_SECRET" || value.is_empty(), "{key} in the template must be empty");
    }
}

/// A Deployment's line `key: value`, read as a number (the first such line).
fn number_after(text: &str, key: &str, file: &str) -> u64 {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(key)?.strip_prefix(": ")?.parse().ok())
        .unwrap_or_else(|| panic!("{file}: no `{key}: <number>`"))
}

#[test]
fn deployments_drain_in_time_and_probe_the_service() {
    let configmap: BTreeMap<String, String> = configmap().into_iter().collect();
    let shutdown = humantime::parse_duration(&configmap["SHUTDOWN_TIMEOUT"]).expect("SHUTDOWN_TIMEOUT");
    let prefix = &configmap["CHATBOX_PATH_PREFIX"];
    let port = &configmap["SERVER_PORT"];
    let main = read(&kubernetes("deployment.yaml"));
    for file in ["deployment.yaml", "deployment-v1.1.0.yaml"] {
        let text = read(&kubernetes(file));
        let grace = Duration::from_secs(number_after(&text, "terminationGracePeriodSeconds", file));
        let pre_stop = Duration::from_secs(number_after(&text, "seconds", file));
        assert!(
            grace >= pre_stop + shutdown + Duration::from_secs(5),
            "{file}: terminationGracePeriodSeconds ({grace:?}) must exceed the preStop pause ({pre_stop:?}) plus SHUTDOWN_TIMEOUT ({shutdown:?}) with a margin"
        );
        for route in ["healthz", "readyz"] {
            assert!(
                text.contains(&format!("path: {prefix}/{route}\n")),
                "{file}: no probe on {prefix}/{route}"
            );
        }
        assert!(
            text.contains(&format!("containerPort: {port}\n")),
            "{file}: containerPort is not SERVER_PORT"
        );
        // One replica as shipped (HUB_BACKEND=memory); the Redis components remove the pin.
        assert!(text.contains("replicas: 1\n"), "{file}: one replica without Redis");
        assert!(text.contains("maxUnavailable: 0\n"), "{file}: a rolling update must never leave zero pods");
        if file != "deployment.yaml" {
            let containers = |text: &str| -> Vec<String> {
                let (_, rest) = text.split_once("      containers:\n").unwrap_or_default();
                rest.lines().map(str::to_owned).collect()
            };
            let (this, reference) = (containers(&text), containers(&main));
            let first_difference = this.iter().zip(&reference).position(|(a, b)| a != b);
            assert!(
                first_difference.is_none() && this.len() == reference.len() && !this.is_empty(),
                "{file}: from `containers:` down it must be the same as deployment.yaml; first difference: {:?}",
                first_difference.map(|i| (&this[i], &reference[i]))
            );
        }
    }
}

/// Runs `create-secret.sh --check-only` with `secret` as JWT_SECRET, in a clean
/// environment with the given locale (`None`: no locale variable at all).
fn script_accepts(secret: &str, locale: Option<&str>) -> bool {
    let mut command = Command::new("bash");
    command
        .arg(kubernetes("create-secret.sh"))
        .arg("--check-only")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("JWT_SECRET", secret);
    if let Some(locale) = locale {
        command.env("LC_ALL", locale);
    }
    let output = command.output().expect("bash runs create-secret.sh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains(secret), "create-secret.sh printed the secret");
    output.status.success()
}

#[test]
fn create_secret_refuses_exactly_what_the_service_refuses() {
    let strong = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";
    let mut cases: Vec<String> = vec![
        strong.to_owned(),
        strong[..31].to_owned(),
        format!("{strong}{strong}"),
        "abcdefgabcdefgabcdefgabcdefgabcdefg".to_owned(),
        "abcdefghabcdefghabcdefghabcdefgh".to_owned(),
        // Byte length against character count: 16 characters, 32 bytes.
        "ÄÖÜäöüßẞÄÖÜäöüßx".to_owned(),
        "ééééééééééééééééééééééééééééééééé".to_owned(),
        // 9 distinct 3-byte characters made of 4 distinct bytes.
        "\u{2000}\u{2001}\u{2002}\u{2040}\u{2041}\u{2042}\u{2080}\u{2081}\u{2082}\u{2000}\u{2001}".to_owned(),
        "with a space and a $dollar and `backticks` 'quotes'".to_owned(),
        "line\nbreaks\ncount\nas\ncharacters 0123".to_owned(),
    ];
    for pattern in WEAK_PATTERNS {
        cases.push(format!("{strong}{}", pattern.to_ascii_uppercase()));
        cases.push(format!("{pattern}{}", &strong[..28]));
    }
    let mut disagreements = Vec::new();
    // The caller's locale must not matter: the rule counts bytes and folds ASCII only.
    for (case, locale) in cases.iter().flat_map(|case| [(case, None), (case, Some("C.UTF-8"))]) {
        let service = weak_secret_reason(case).is_none();
        if script_accepts(case, locale) != service {
            let verdict = if service { "accepts" } else { "refuses" };
            disagreements.push(format!("{case:?} (locale {locale:?}): the service {verdict}"));
        }
    }
    assert!(disagreements.is_empty(), "create-secret.sh disagrees with the service on {disagreements:#?}");
    assert!(cases.iter().any(|c| weak_secret_reason(c).is_none()), "the cases include accepted secrets");
}

const GOOD_JWT_SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";

/// The ConfigMap values a component sets: its JSON patches' `replace` operations on
/// `/data/<KEY>`, as `(KEY, value)`. A patch on `/data` in another form fails the test, so
/// a change this reader cannot see is not skipped.
fn component_configmap_changes(component: &str) -> Vec<(String, String)> {
    let path = kubernetes(&format!("components/{component}/kustomization.yaml"));
    let text = read(&path);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut changes = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(key) = line.strip_prefix("path: /data/") else {
            assert!(!line.contains("/data"), "{}: cannot read {line:?}", path.display());
            continue;
        };
        let operation = index.checked_sub(1).map(|i| lines[i]);
        let value = lines.get(index + 1).and_then(|next| next.strip_prefix("value: "));
        match (operation, value) {
            (Some("- op: replace"), Some(value)) => {
                changes.push((key.to_owned(), value.trim_matches('"').to_owned()));
            }
            _ => panic!("{}: expected `- op: replace`, `path: /data/{key}`, `value: ...`", path.display()),
        }
    }
    changes
}

/// The ConfigMap with `changes` applied, plus `secret`'s entries, as the pod sees them.
fn environment(changes: &[(String, String)], secret: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut entries = configmap();
    for (key, value) in changes {
        let entry = entries.iter_mut().find(|(name, _)| name == key);
        let entry = entry.unwrap_or_else(|| panic!("a component replaces {key}, which configmap.yaml lacks"));
        entry.1.clone_from(value);
    }
    entries.extend(secret.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
    entries
}

fn as_pairs(entries: &[(String, String)]) -> Vec<(&str, &str)> {
    entries.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect()
}

#[test]
fn the_mongodb_component_makes_mongodb_the_store_and_needs_the_uri() {
    let changes = component_configmap_changes("mongodb");
    assert!(!changes.is_empty(), "the mongodb component sets no ConfigMap value");
    let uri = "mongodb://chatbox:pw-Zq8check@mongodb.databases.svc.cluster.local:27017/chat";
    let with_uri = environment(&changes, &[("JWT_SECRET", GOOD_JWT_SECRET), ("MONGO_URI", uri)]);
    let settings = match load_from(&as_pairs(&with_uri), false).settings {
        Ok(settings) => settings,
        Err(problems) => panic!("configmap.yaml with components/mongodb is refused: {problems:?}"),
    };
    assert_eq!(settings.storage.backend, StorageBackend::MongoDb);

    // Without the URI the start stops, instead of falling back to memory.
    let without_uri = environment(&changes, &[("JWT_SECRET", GOOD_JWT_SECRET)]);
    let problems = load_from(&as_pairs(&without_uri), false).settings.expect_err("no MONGO_URI");
    assert!(problems.iter().any(|problem| problem.starts_with("MONGO_URI: ")), "{problems:?}");
}

#[test]
fn the_redis_components_make_redis_the_hub_and_need_the_url() {
    let changes = component_configmap_changes("redis");
    assert!(!changes.is_empty(), "the redis component sets no ConfigMap value");
    // The managed-Redis variant differs only in what it installs and where it opens 6379.
    assert_eq!(component_configmap_changes("redis-external"), changes, "the two Redis components disagree");
    // HUB_BACKEND=redis needs MongoDB storage (replicas share the store), as the component
    // comments say: both components' changes, and the URIs in the Secret.
    let mut changes = changes;
    changes.extend(component_configmap_changes("mongodb"));
    let mongo = "mongodb://chatbox:pw-Zq8check@mongodb.databases.svc.cluster.local:27017/chat";
    let redis = "redis://redis.chatbox.svc.cluster.local:6379/0";
    let with_url =
        environment(&changes, &[("JWT_SECRET", GOOD_JWT_SECRET), ("MONGO_URI", mongo), ("REDIS_URL", redis)]);
    if let Err(problems) = load_from(&as_pairs(&with_url), false).settings {
        panic!("configmap.yaml with components/redis and components/mongodb is refused: {problems:?}");
    }

    // Without the URL the start stops, instead of keeping the state in each pod.
    let without_url = environment(&changes, &[("JWT_SECRET", GOOD_JWT_SECRET), ("MONGO_URI", mongo)]);
    let problems = load_from(&as_pairs(&without_url), false).settings.expect_err("no REDIS_URL");
    assert!(problems.iter().any(|problem| problem.starts_with("REDIS_URL: ")), "{problems:?}");
}

/// The lines of a component's kustomization.yaml without comments, trimmed at the end.
fn component_lines(component: &str) -> Vec<String> {
    let text = read(&kubernetes(&format!("components/{component}/kustomization.yaml")));
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .map(|line| line.trim_end().to_owned())
        .collect()
}

/// The items of the top-level list `key:` (`  - item` lines) of a kustomization.
fn top_level_list(lines: &[String], key: &str) -> Vec<String> {
    lines
        .iter()
        .skip_while(|line| *line != &format!("{key}:"))
        .skip(1)
        .map_while(|line| line.strip_prefix("  - ").map(str::to_owned))
        .collect()
}

#[test]
fn the_redis_components_run_several_replicas_and_nothing_else_does() {
    // Both Redis components include components/scale-out; no other component, nor the
    // base, does (without Redis the service must run one replica).
    for component in ["redis", "redis-external"] {
        let included = top_level_list(&component_lines(component), "components");
        assert_eq!(included, ["../scale-out"], "components/{component} must include components/scale-out");
    }
    for component in ["mongodb", "smtp", "monitoring"] {
        let included = top_level_list(&component_lines(component), "components");
        assert!(
            included.is_empty(),
            "components/{component} includes {included:?}: only Redis may scale out"
        );
    }
    let base = read(&kubernetes("kustomization.yaml"));
    let base: Vec<String> = base.lines().map(str::to_owned).collect();
    let resources = top_level_list(&base, "resources");
    assert!(!resources.is_empty(), "kustomization.yaml lists no resources");
    assert!(!resources.iter().any(|r| r.contains("hpa")), "the base must not apply an HPA: {resources:?}");
    assert!(top_level_list(&base, "components").is_empty(), "the base enables no component as shipped");

    // components/scale-out: the HPA, and the Deployment's count removed so it owns it.
    let scale_out = component_lines("scale-out");
    assert_eq!(top_level_list(&scale_out, "resources"), ["hpa.yaml"]);
    let patch: Vec<&str> = scale_out.iter().map(|line| line.trim()).collect();
    let remove = patch.windows(2).position(|pair| pair == ["- op: remove", "path: /spec/replicas"]);
    assert!(remove.is_some(), "components/scale-out must remove /spec/replicas: {patch:?}");
    assert!(
        patch.windows(2).any(|pair| pair == ["kind: Deployment", "name: chatbox-websocket"]),
        "components/scale-out's patch must target Deployment chatbox-websocket"
    );
    assert_eq!(patch.iter().filter(|line| line.starts_with("- op:")).count(), 1, "one operation only");

    let hpa = read(&kubernetes("components/scale-out/hpa.yaml"));
    assert_eq!(number_after(&hpa, "minReplicas", "hpa.yaml"), 3, "hpa.yaml: at least 3 replicas");
    assert_eq!(number_after(&hpa, "maxReplicas", "hpa.yaml"), 10, "hpa.yaml: at most 10 replicas");
    assert!(
        hpa.contains("    kind: Deployment\n    name: chatbox-websocket\n"),
        "hpa.yaml scales chatbox-websocket"
    );
    assert!(
        hpa.contains("scaleDown:\n      stabilizationWindowSeconds: 600\n"),
        "hpa.yaml: scale down slowly"
    );

    // All but one pod keep serving through drains; rolling updates add before removing.
    let pdb = read(&kubernetes("pdb.yaml"));
    assert_eq!(number_after(&pdb, "maxUnavailable", "pdb.yaml"), 1, "pdb.yaml: maxUnavailable 1");
    let deployment = read(&kubernetes("deployment.yaml"));
    assert_eq!(number_after(&deployment, "maxSurge", "deployment.yaml"), 1);
    assert_eq!(number_after(&deployment, "maxUnavailable", "deployment.yaml"), 0);
}

#[test]
fn the_smtp_component_changes_no_setting() {
    // The relay's settings are the operator's; the component only opens the ports.
    assert_eq!(component_configmap_changes("smtp"), Vec::<(String, String)>::new());
}

#[test]
fn sms_alerts_are_on_with_the_three_settings_whatever_sms_provider_says() {
    // What configmap.yaml says above SMS_PROVIDER.
    let sms = [
        ("JWT_SECRET", GOOD_JWT_SECRET),
        ("SMS_ACCOUNT_SID", "AC0123456789"),
        ("SMS_FROM", "+15551234567"),
        ("SMS_AUTH_TOKEN", "tok-Zq8check"),
    ];
    let configmap: BTreeMap<String, String> = configmap().into_iter().collect();
    assert_eq!(configmap["SMS_PROVIDER"], "", "configmap.yaml ships SMS_PROVIDER empty");
    for provider in ["", "twilio"] {
        let entries = environment(&[("SMS_PROVIDER".to_owned(), provider.to_owned())], &sms);
        let settings = load_from(&as_pairs(&entries), false).settings.expect("valid");
        assert!(settings.alerts.sms.is_some(), "SMS_PROVIDER={provider:?}: SMS alerts are off");
    }
    let partial = environment(&[], &sms[..3]);
    assert!(load_from(&as_pairs(&partial), false).settings.is_err(), "SMS without its token is accepted");
    let wrong = environment(&[("SMS_PROVIDER".to_owned(), "vonage".to_owned())], &sms);
    assert!(load_from(&as_pairs(&wrong), false).settings.is_err(), "SMS_PROVIDER=vonage is accepted");
    let off = environment(&[("SMS_PROVIDER".to_owned(), "twilio".to_owned())], &sms[..1]);
    let settings = load_from(&as_pairs(&off), false).settings.expect("valid");
    assert!(settings.alerts.sms.is_none(), "SMS_PROVIDER=twilio alone turns SMS on");
}
