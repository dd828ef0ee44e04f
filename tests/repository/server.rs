//! A private FerretDB, started through `scripts/ferretdb.sh` with a state directory of its
//! own, for the tests that stop the server or read its files (the shared server of
//! `MONGO_URI` must not be disturbed).
//!
//! Runs when the FerretDB binary is built (`scripts/ferretdb.sh build`); when it is not,
//! the test is skipped with a printed line, unless `CHATBOX_REQUIRE_MONGO=1`, where the
//! script builds it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::{mongo_required, say_once};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ferretdb.sh")
}

/// A running private server; stopped and its files removed on drop.
pub struct PrivateServer {
    state_dir: PathBuf,
    port: u16,
}

impl PrivateServer {
    /// Starts one, or returns `None` (after one printed line) when FerretDB is not built
    /// and not required.
    pub async fn start(test: &str) -> Option<Self> {
        let built = Command::new(script()).arg("path").output().is_ok_and(|out| out.status.success());
        if !built && !mongo_required() {
            say_once(
                "ferretdb-skipped",
                "repository suite: tests with a private FerretDB SKIPPED (not built; run `scripts/ferretdb.sh build`)",
            );
            return None;
        }
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let state_dir = std::env::temp_dir().join(format!(
            "chatbox-ferretdb-{}-{}-{test}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let dir = state_dir.clone();
        let output =
            tokio::task::spawn_blocking(move || run(&dir, "start", None)).await.expect("script task");
        let port = output
            .lines()
            .find_map(|line| line.strip_prefix("MONGO_URI=mongodb://127.0.0.1:"))
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no MONGO_URI line from the script: {output}"));
        Some(Self { state_dir, port })
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// The SQLite files.
    pub fn data_dir(&self) -> PathBuf {
        self.state_dir.join("data")
    }

    /// Stops it (SIGTERM; the script waits until it is gone).
    pub async fn stop(&self) {
        let dir = self.state_dir.clone();
        tokio::task::spawn_blocking(move || run(&dir, "stop", None)).await.expect("script task");
    }

    /// Starts it again on the same port with the same data.
    pub async fn restart(&self) {
        let (dir, port) = (self.state_dir.clone(), self.port);
        tokio::task::spawn_blocking(move || run(&dir, "start", Some(port))).await.expect("script task");
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").env("FERRETDB_STATE_DIR", &self.state_dir).output();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Runs the script; its standard output, or a failed test.
fn run(state_dir: &Path, command: &str, port: Option<u16>) -> String {
    let mut script = Command::new(script());
    script.arg(command).env("FERRETDB_STATE_DIR", state_dir).env_remove("FERRETDB_PORT");
    if let Some(port) = port {
        script.env("FERRETDB_PORT", port.to_string());
    }
    let output = script.output().expect("run scripts/ferretdb.sh");
    assert!(
        output.status.success(),
        "scripts/ferretdb.sh {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
