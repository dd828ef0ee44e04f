//! The compiled `chatbox` binary as a test server: started on port 0 with a clean
//! environment, its log (standard output and error, one JSON object per line) collected
//! by a background task so no line is lost and the pipes never fill, and every wait on
//! it bounded by a deadline (it is another process: it is observed, never trusted to
//! answer).
#![allow(dead_code)]

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long the binary may take to start listening (a debug build on a busy machine).
const START_WAIT: Duration = Duration::from_secs(30);

/// Every line the process printed so far, and a counter that moves with each new one.
#[derive(Clone)]
struct Log {
    lines: Arc<Mutex<Vec<String>>>,
    count: watch::Sender<usize>,
}

impl Log {
    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.push(line);
        self.count.send_replace(lines.len());
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Copies `pipe` into the log line by line until it closes.
    fn collect(&self, pipe: impl AsyncRead + Unpin + Send + 'static) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log.push(line);
            }
        })
    }
}

/// A running `chatbox` binary.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub port: u16,
    log: Log,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// The `message` of a JSON log line (the whole line if it is not JSON).
pub fn message(line: &str) -> String {
    serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| line.to_owned())
}

impl Server {
    /// Starts the binary with only `PATH` and `vars` in its environment, and waits for
    /// `Server listening on <addr>` to learn its port.
    pub async fn start(vars: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatbox"));
        command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (name, value) in vars {
            command.env(name, value);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().expect("spawn the chatbox binary");
        let pid = child.id().expect("pid");
        let (count, _) = watch::channel(0);
        let log = Log { lines: Arc::default(), count };
        let readers = vec![
            log.collect(child.stdout.take().expect("stdout")),
            log.collect(child.stderr.take().expect("stderr")),
        ];
        let mut server = Self { child, pid, port: 0, log, readers };
        let line = server.wait_for_log("Server listening on", Instant::now() + START_WAIT).await;
        let after = line.split("Server listening on ").nth(1).expect("an address");
        let address: String =
            after.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
        server.port = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        server
    }

    /// The lines printed so far.
    pub fn log(&self) -> Vec<String> {
        self.log.snapshot()
    }

    /// The first line (from the start) containing `needle`, waiting for it until
    /// `deadline`; fails the test with the whole log otherwise.
    pub async fn wait_for_log(&self, needle: &str, deadline: Instant) -> String {
        let mut changes = self.log.count.subscribe();
        loop {
            if let Some(line) = self.log.snapshot().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    panic!("{needle:?} never appeared in the log:\n{}", self.log.snapshot().join("\n"))
                }
            }
        }
    }

    /// Sends SIGTERM (through `kill`, so the test needs no signal crate).
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid);
    }

    /// Kills the process at once (SIGKILL: no drain, no goodbye), and waits for it.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill");
    }

    /// Waits for the process, told to stop, to exit before `deadline`; fails the test with
    /// its log otherwise.
    pub async fn exited(&mut self, deadline: Instant) -> ExitStatus {
        match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                panic!("the process did not exit in time; its log:\n{}", self.log.snapshot().join("\n"))
            }
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the exit until `deadline` (the process is killed and the test fails
    /// after it); returns the status and the whole log, read to its end.
    pub async fn exit(mut self, deadline: Instant) -> (ExitStatus, Vec<String>) {
        let status = match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!(
                    "the process was still running at the deadline; its log:\n{}",
                    self.log.snapshot().join("\n")
                );
            }
        };
        // The pipes close with the process; the readers then have every line.
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        (status, self.log.snapshot())
    }

    /// One plain HTTP/1.1 request; returns the status and the body. The whole exchange
    /// must finish before `deadline`.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> (u16, String) {
        let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let port = self.port;
        let exchange = async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.expect("read");
            response
        };
        let response =
            tokio::time::timeout_at(deadline, exchange).await.expect("answered before the deadline");
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
        (status, body)
    }
}
