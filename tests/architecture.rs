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

/// Every adapter crate, found on disk (so a new adapter is checked without editing
/// this test): its folder and package name.
fn adapters() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root().join("adapters")).expect("adapters/") {
        let path = entry.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(path.join("Cargo.toml")) else { continue };
        let manifest: toml::Table = toml::from_str(&text).expect("valid manifest");
        let name = manifest["package"]["name"].as_str().expect("package name").to_owned();
        let folder = format!("adapters/{}", path.file_name().expect("name").to_string_lossy());
        found.push((folder, name));
    }
    found.sort();
    found
}

#[test]
fn application_knows_ports_not_concrete_adapters() {
    let mut forbidden: Vec<String> = [
        "chatbox",
        "warp",
        "hyper",
        "hyper-util",
        "mongodb",
        "reqwest",
        "lettre",
        "tokio-tungstenite",
        "async-openai",
        "jsonwebtoken",
        "serde_json",
        "tracing-subscriber",
    ]
    .map(str::to_owned)
    .into();
    forbidden.extend(adapters().into_iter().map(|(_, name)| name));
    for dependency in dependencies("application") {
        assert!(!forbidden.contains(&dependency), "application must not depend on {dependency}");
    }
    assert!(dependencies("application").iter().any(|d| d == "chatbox-domain"));
}

#[test]
fn adapters_do_not_reach_outward_or_sideways() {
    let adapters = adapters();
    assert!(adapters.len() >= 5, "the adapters are found: {adapters:?}");
    let names: Vec<&str> = adapters.iter().map(|(_, name)| name.as_str()).collect();
    for (folder, _) in &adapters {
        let deps = dependencies(folder);
        for dependency in &deps {
            assert!(dependency != "chatbox", "{folder} must not depend on infrastructure");
            assert!(
                !names.contains(&dependency.as_str()),
                "{folder} must not depend on another adapter ({dependency})"
            );
        }
        assert!(
            deps.iter().any(|d| d == "chatbox-application"),
            "{folder} implements or calls application ports"
        );
    }
}
