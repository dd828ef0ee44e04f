//! `chatbox migrate` reads only what it uses: the storage and encryption settings (and
//! logging). It runs with no model provider and no JWT secret configured, ignores a
//! broken setting of another section, and still refuses a bad storage or encryption
//! setting before it connects, naming the variable.
//!
//! No MongoDB server is needed: the URI points at a port nothing listens on, so a
//! command that got past validation ends with "unreachable" instead.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Far above the one 300 ms connection attempt each run makes at most.
const WAIT: Duration = Duration::from_secs(30);
const HEX_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const VALIDATION_FAILED: &str = "Configuration validation failed";
const UNREACHABLE: &str = "MongoDB is unreachable after 1 attempt(s)";

/// A loopback URI nothing listens on (a port bound, then released).
fn unreachable_uri() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    format!("mongodb://127.0.0.1:{port}/")
}

/// Runs `chatbox migrate` with exactly `vars`; its exit success and all its output.
async fn migrate(vars: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatbox"));
    command.arg("migrate").env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.envs(vars.iter().copied()).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(WAIT, command.output()).await.expect("exits in time").expect("runs");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// Storage settings that pass validation and fail fast at the connection.
fn storage(uri: &str) -> Vec<(&str, &str)> {
    vec![
        ("MONGO_URI", uri),
        ("MONGO_CONNECT_TIMEOUT", "300ms"),
        ("MONGO_RETRY_ATTEMPTS", "1"),
        ("ENCRYPTION_KEY", HEX_KEY),
    ]
}

#[tokio::test]
async fn migrate_runs_without_a_provider_or_a_jwt_secret() {
    let uri = unreachable_uri();
    let (ok, text) = migrate(&storage(&uri)).await;
    assert!(!ok, "nothing to connect to: {text}");
    assert!(!text.contains(VALIDATION_FAILED), "validated more than storage: {text}");
    assert!(text.contains(UNREACHABLE) && text.contains("chatbox migrate stopped"), "{text}");

    // A broken setting of a section migrate does not use is not even read.
    let mut vars = storage(&uri);
    vars.extend([("JWT_SECRET", "short"), ("SERVER_PORT", "70000"), ("LLM_PROVIDER_1_TYPE", "gpt")]);
    let (ok, text) = migrate(&vars).await;
    assert!(!ok && text.contains(UNREACHABLE), "{text}");
    assert!(!text.contains("JWT_SECRET") && !text.contains("SERVER_PORT"), "{text}");
}

#[tokio::test]
async fn migrate_refuses_a_bad_storage_or_encryption_setting() {
    let uri = unreachable_uri();
    for (name, value) in [
        ("MONGO_DATABASE", "chat.prod"),
        ("MONGO_RETRY_ATTEMPTS", "0"),
        ("STORAGE_BACKEND", "postgres"),
        ("ENCRYPTION_KEY", "too-short-key-Zq8"),
        ("ENCRYPTION_KEY_ID", "bad id"),
        ("ENCRYPTION_OLD_KEYS", "k0:not-a-key-Zq8"),
    ] {
        let mut vars = storage(&uri);
        vars.retain(|(k, _)| *k != name);
        vars.push((name, value));
        let (ok, text) = migrate(&vars).await;
        assert!(!ok, "{name}={value}: {text}");
        assert!(text.contains(&format!("{name}: ")) && text.contains(VALIDATION_FAILED), "{name}: {text}");
        assert!(!text.contains(UNREACHABLE), "{name}: refused before connecting: {text}");
        assert!(!text.contains("Zq8"), "a key is never echoed: {text}");
    }
    let (ok, text) = migrate(&[]).await;
    assert!(!ok && text.contains("chatbox migrate needs MongoDB storage: set MONGO_URI"), "{text}");
}
