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

/// A module of a crate, as its path from the crate root (`[]` is the root).
type ModulePath = Vec<String>;

/// The module a source file defines: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`.
fn module_of(src: &Path, file: &Path) -> ModulePath {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> =
        relative.with_extension("").iter().map(|part| part.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Every path a source names through `crate::` or `super::`, expanded from `use` groups
/// (`crate::{a, b::{c, d}}`), resolved against the module `here`. Test modules (from
/// `#[cfg(test)]` on) and comments are left out: they ship nothing.
fn named_paths(source: &str, here: &ModulePath) -> Vec<ModulePath> {
    let code: String = source
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &code[at..];
        let starts_word = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let base = if starts_word && rest.starts_with("crate::") {
            at += "crate::".len();
            Some(Vec::new())
        } else if starts_word && rest.starts_with("super::") {
            let mut base = here.clone();
            while code[at..].starts_with("super::") {
                base.pop();
                at += "super::".len();
            }
            Some(base)
        } else {
            None
        };
        match base {
            Some(base) => at = path_tree(&code, at, base, &mut found),
            None => at += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

/// Reads one path (or `{…}` group of paths) from `at`, each prefixed by `prefix`.
fn path_tree(code: &str, mut at: usize, prefix: ModulePath, found: &mut Vec<ModulePath>) -> usize {
    let bytes = code.as_bytes();
    if bytes.get(at) == Some(&b'{') {
        at += 1;
        loop {
            while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace() || *b == b',') {
                at += 1;
            }
            match bytes.get(at) {
                Some(b'}') | None => return at + 1,
                _ => at = path_tree(code, at, prefix.clone(), found),
            }
        }
    }
    let mut path = prefix;
    loop {
        let start = at;
        while bytes.get(at).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            at += 1;
        }
        if at > start {
            path.push(code[start..at].to_owned());
        }
        if code[at..].starts_with("::{") {
            return path_tree(code, at + 2, path, found);
        }
        if code[at..].starts_with("::") && at > start {
            at += 2;
            continue;
        }
        found.push(path);
        return at;
    }
}

/// The import edges between the modules of the crate in `crate_dir`: `a → b` when a
/// file of `a` names something of `b` (the longest module prefix of the path named). A
/// module naming its own descendants is not an edge: a parent declares and re-exports
/// its children; a child using its parent is one.
fn module_edges(crate_dir: &str) -> Vec<(ModulePath, ModulePath)> {
    let src = root().join(crate_dir).join("src");
    let files = rust_sources(&src);
    let modules: std::collections::BTreeSet<ModulePath> =
        files.iter().map(|(path, _)| module_of(&src, path)).collect();
    let mut edges = std::collections::BTreeSet::new();
    for (path, source) in &files {
        let here = module_of(&src, path);
        for named in named_paths(source, &here) {
            let target = (0..=named.len())
                .rev()
                .map(|length| named[..length].to_vec())
                .find(|prefix| modules.contains(prefix))
                .unwrap_or_default();
            if !target.starts_with(&here) {
                edges.insert((here.clone(), target));
            }
        }
    }
    edges.into_iter().collect()
}

/// One import circle of `edges`, if there is any: the modules around it, in order.
fn find_circle(edges: &[(ModulePath, ModulePath)]) -> Option<Vec<ModulePath>> {
    fn visit(
        node: &ModulePath,
        edges: &[(ModulePath, ModulePath)],
        stack: &mut Vec<ModulePath>,
        done: &mut std::collections::BTreeSet<ModulePath>,
    ) -> Option<Vec<ModulePath>> {
        if let Some(position) = stack.iter().position(|on_stack| on_stack == node) {
            return Some(stack[position..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for (_, next) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges.iter().find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

/// Every crate of the workspace, by folder.
fn crates() -> Vec<String> {
    let mut folders = vec!["domain".to_owned(), "application".to_owned(), "infrastructure".to_owned()];
    folders.extend(adapters().into_iter().map(|(folder, _)| folder));
    folders
}

#[test]
fn no_two_modules_of_a_crate_import_each_other_even_around_a_circle() {
    let circles: Vec<String> = crates()
        .into_iter()
        .filter_map(|folder| {
            let circle = find_circle(&module_edges(&folder))?;
            let names: Vec<String> =
                circle.iter().map(|m| if m.is_empty() { "crate".to_owned() } else { m.join("::") }).collect();
            Some(format!("{folder}: {}", names.join(" → ")))
        })
        .collect();
    assert!(circles.is_empty(), "modules that import each other in a circle:\n{}", circles.join("\n"));
}

#[test]
fn the_circle_rule_sees_direct_and_grouped_imports_and_rings() {
    let here = vec!["chat".to_owned(), "submit".to_owned()];
    let named = named_paths(
        "use super::{Connection, resolve::Target};\nuse crate::live::{LiveSession, session::{ReplayStep}};\n// crate::ignored\nlet x = crate::events::Frame::new();",
        &here,
    );
    let as_text: Vec<String> = named.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        as_text,
        [
            "chat::Connection",
            "chat::resolve::Target",
            "live::LiveSession",
            "live::session::ReplayStep",
            "events::Frame::new"
        ]
    );
    let edge = |a: &str, b: &str| -> (ModulePath, ModulePath) {
        (a.split("::").map(str::to_owned).collect(), b.split("::").map(str::to_owned).collect())
    };
    assert!(find_circle(&[edge("a", "b"), edge("b", "c")]).is_none());
    let ring = find_circle(&[edge("a", "b"), edge("b", "c"), edge("c", "a")]).expect("a ring is a circle");
    assert_eq!(ring.len(), 3);
    assert!(find_circle(&[edge("x", "y"), edge("y", "x")]).is_some(), "two modules importing each other");
}
