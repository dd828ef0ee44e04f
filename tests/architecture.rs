//! The layering rule of `docs/architecture.md`, checked: dependencies point inward only
//! (`infrastructure → adapters → application → domain`). `domain` does no I/O and knows
//! no runtime; `application` knows no concrete adapter. Only `[dependencies]` count:
//! test-only dependencies (an in-memory store to drive use-case tests) do not ship.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn dependencies(crate_dir: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(crate_dir).join("Cargo.toml")).expect("manifest");
    let manifest: toml::Table = toml::from_str(&text).expect("valid manifest");
    manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|deps| deps.keys().cloned().collect())
        .unwrap_or_default()
}

fn rust_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push((path.clone(), std::fs::read_to_string(&path).expect("source")));
        }
    }
    files
}

#[test]
fn domain_depends_only_on_pure_crates_and_does_no_io() {
    let allowed = ["chrono", "thiserror"];
    for dependency in dependencies("domain") {
        assert!(allowed.contains(&dependency.as_str()), "domain must stay pure, but depends on {dependency}");
    }
    let forbidden = [
        "tokio",
        "std::fs",
        "std::net::Tcp",
        "std::net::Udp",
        "std::env",
        "SystemTime::now",
        "Instant::now",
        "Utc::now",
        "std::process",
        "std::thread",
    ];
    for (path, source) in rust_sources(&root().join("domain/src")) {
        for needle in forbidden {
            assert!(
                !source.contains(needle),
                "{} uses {needle}: time, ids and I/O come in as values",
                path.display()
            );
        }
    }
}

#[test]
fn application_knows_ports_not_concrete_adapters() {
    let forbidden = [
        "chatbox",
        "chatbox-http",
        "chatbox-memory-store",
        "chatbox-mongodb-store",
        "chatbox-llm",
        "warp",
        "hyper",
        "hyper-util",
        "mongodb",
        "reqwest",
        "tokio-tungstenite",
        "async-openai",
        "jsonwebtoken",
        "serde_json",
        "tracing-subscriber",
    ];
    for dependency in dependencies("application") {
        assert!(!forbidden.contains(&dependency.as_str()), "application must not depend on {dependency}");
    }
    assert!(dependencies("application").iter().any(|d| d == "chatbox-domain"));
}

#[test]
fn adapters_do_not_reach_outward_or_sideways() {
    for adapter in ["adapters/http", "adapters/memory", "adapters/mongodb", "adapters/llm"] {
        let deps = dependencies(adapter);
        for dependency in &deps {
            assert!(dependency != "chatbox", "{adapter} must not depend on infrastructure");
            let sideways = ["chatbox-http", "chatbox-memory-store", "chatbox-mongodb-store", "chatbox-llm"];
            assert!(
                !sideways.contains(&dependency.as_str()),
                "{adapter} must not depend on another adapter ({dependency})"
            );
        }
        assert!(
            deps.iter().any(|d| d == "chatbox-application"),
            "{adapter} implements or calls application ports"
        );
    }
}
