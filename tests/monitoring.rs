//! The shipped monitoring works against the real thing: a real Prometheus (Debian's
//! `prometheus` package) scrapes the compiled service, loads
//! `deployments/monitoring/chatbox-rules.yml`, and evaluates every query of the Grafana
//! dashboard and every alert's measured side; each must return data, at least one sample
//! of it a number. The two recording rules must give the earlier service's gauge names.
//!
//! The service runs on MongoDB (so the storage series are MongoDB's, retries included)
//! with the demo model. Traffic starts after Prometheus's first scrape, so every rate
//! sees it. Every wait polls Prometheus until a condition holds or a deadline passes.
//!
//! Needs the `prometheus` binary and a MongoDB-compatible server (`MONGO_URI`). Without
//! them the test says what it skipped; with `CHATBOX_REQUIRE_PROMETHEUS=1` and
//! `CHATBOX_REQUIRE_MONGO=1` (set by `scripts/test.sh` in CI) they are required.

#[path = "support/jwt.rs"]
mod jwt;
#[path = "support/mongo.rs"]
mod mongo;
#[path = "support/process.rs"]
mod process;
#[path = "support/ws.rs"]
mod ws;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use process::Server;

/// ≥32 bytes, no weak pattern, many distinct characters.
const SECRET: &str = "monitoring-Q7w2Er9Ty4Ui8Op3As6Df1Gh5Jk0Lz";
/// How long Prometheus may take to start, scrape or evaluate.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(90);
/// What `$__rate_interval` stands for in the dashboard's queries here: long enough for
/// a few 1 s scrapes, short enough that the test's traffic is inside it.
const RATE_INTERVAL: &str = "1m";

fn repository_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn prometheus_required() -> bool {
    std::env::var("CHATBOX_REQUIRE_PROMETHEUS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The `prometheus` binary on `PATH`, if any.
fn prometheus_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("prometheus")).find(|candidate| candidate.is_file())
}

/// A free loopback port (bound, read, released: Prometheus cannot report a port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// A Prometheus scraping the service every second, with the shipped rules loaded.
struct Prometheus {
    _child: Child,
    base: String,
    http: reqwest::Client,
    _data: TempDir,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Prometheus {
    async fn start(binary: &Path, service_port: u16) -> Self {
        let unique =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        let data = TempDir(std::env::temp_dir().join(format!("chatbox-prometheus-{unique}")));
        std::fs::create_dir_all(&data.0).expect("temporary directory");
        let rules = repository_file("deployments/monitoring/chatbox-rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: chatbox\n    metrics_path: /metrics\n    static_configs:\n\
             \x20     - targets: ['127.0.0.1:{service_port}']\n",
            rules = rules.display()
        );
        let config_file = data.0.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write the configuration");
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", data.0.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        Self { _child: child, base: format!("http://127.0.0.1:{port}"), http, _data: data }
    }

    /// `GET /api/v1/<path>` with `query`, as JSON; `None` while Prometheus is not up.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let response =
            self.http.get(format!("{}/api/v1/{path}", self.base)).query(query).send().await.ok()?;
        let body: Value = response.json().await.ok()?;
        Some(body)
    }

    /// The instant result of `expr`; fails the test when Prometheus refuses it.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let body = self.api("query", &[("query", expr)]).await.expect("prometheus answers");
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `expr` until `holds` accepts its result or the deadline passes.
    async fn until(&self, what: &str, expr: &str, holds: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        loop {
            if let Some(body) = self.api("query", &[("query", expr)]).await
                && body["status"] == "success"
                && holds(body["data"]["result"].as_array().map_or(&[][..], Vec::as_slice))
            {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: `{expr}` never held");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The numbers of an instant-query result (`NaN` where Prometheus says so).
fn values(result: &[Value]) -> Vec<f64> {
    result
        .iter()
        .filter_map(|sample| sample["value"][1].as_str())
        .map(|text| text.parse::<f64>().unwrap_or(f64::NAN))
        .collect()
}

/// At least one sample, and at least one of them a number.
fn has_data(result: &[Value]) -> bool {
    values(result).iter().any(|value| value.is_finite())
}

/// Every `expr` of the dashboard's panels (rows' nested panels included).
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repository_file("deployments/monitoring/grafana-dashboard.json"))
        .expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().expect("panels").iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let title = panel["title"].as_str().unwrap_or("untitled").to_owned();
                queries.push((title, expr.replace("$__rate_interval", RATE_INTERVAL)));
            }
        }
    }
    queries
}

/// An alert's measured side: its expression without the final comparison with a number
/// (the shipped rules keep to `<query> <op> <number>`).
fn measured_side(expr: &str) -> String {
    let trimmed = expr.trim();
    for op in [" >= ", " <= ", " == ", " != ", " > ", " < "] {
        if let Some((query, threshold)) = trimmed.rsplit_once(op)
            && threshold.trim().parse::<f64>().is_ok()
        {
            return query.trim().to_owned();
        }
    }
    panic!("the alert expression `{expr}` is not `<query> <op> <number>`");
}

/// Some of everything the dashboard shows, as `user`: a readiness check, a conversation,
/// a refused frame, a message over the rate limit, a closed socket.
async fn drive_traffic(server: &Server, user: &str) {
    let deadline = ws::deadline_in(Duration::from_secs(30));
    assert_eq!(server.http("GET", "/chat/readyz", &[], deadline).await.0, 200, "ready");
    let token = jwt::user_token(user, SECRET);
    let url = format!("ws://127.0.0.1:{}/chat/ws?token={token}", server.port);
    let mut socket = ws::connect(&url).await;
    let status = ws::next_json(&mut socket, deadline).await;
    assert_eq!(status["type"], "connection_status", "{status}");
    let question = json!({"type": "user_message", "content": "How do the dashboards look?"});
    socket.send(Message::Text(question.to_string().into())).await.expect("send");
    ws::frames_until(&mut socket, deadline, ws::is_done).await;
    socket.send(Message::Text("{not json".into())).await.expect("send");
    let refused = ws::next_json(&mut socket, deadline).await;
    assert_eq!(refused["type"], "error", "{refused}");
    // Past RATE_LIMIT (1 per hour here): refused by the message limiter.
    socket.send(Message::Text(question.to_string().into())).await.expect("send");
    let limited = ws::next_json(&mut socket, deadline).await;
    assert_eq!(limited["error"]["code"], "TOO_MANY_REQUESTS", "{limited}");
    socket.close(None).await.expect("close");
    let _ = ws::until_closed(&mut socket, deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_every_dashboard_query_and_alert_against_the_running_service() {
    let Some(binary) = prometheus_binary() else {
        assert!(!prometheus_required(), "CHATBOX_REQUIRE_PROMETHEUS is set but `prometheus` is not on PATH");
        let _ = writeln!(
            std::io::stderr(),
            "monitoring: SKIPPED (no `prometheus` on PATH; `apt-get install prometheus`, or run scripts/test.sh)"
        );
        return;
    };
    let Some(mongo) = mongo::reachable("monitoring").await else {
        return;
    };
    let database = mongo::fresh_database("monitoring");
    let server = Server::start(&[
        ("JWT_SECRET", SECRET),
        ("SERVER_HOST", "127.0.0.1"),
        ("SERVER_PORT", "0"),
        ("LOG_FORMAT", "json"),
        ("LLM_PROVIDER_1_ID", "demo"),
        ("LLM_PROVIDER_1_TYPE", "demo"),
        ("MONGO_URI", mongo.uri.as_str()),
        ("MONGO_DATABASE", database.as_str()),
        ("RATE_LIMIT", "1"),
        ("RATE_WINDOW", "1h"),
    ])
    .await;
    let prometheus = Prometheus::start(&binary, server.port).await;
    prometheus.until("the first scrape", r#"up{job="chatbox"}"#, |result| values(result) == [1.0]).await;

    // Twice: a histogram series is created by its first observation, so a rate sees
    // observations only from the next scrape on (a counter's is there at 0 from the start).
    for (round, user) in [(1.0, "monitoring-user-1"), (2.0, "monitoring-user-2")] {
        drive_traffic(&server, user).await;
        prometheus
            .until(
                "the closed socket scraped",
                "chatbox_websocket_connection_duration_seconds_count",
                |result| values(result).iter().any(|count| *count >= round),
            )
            .await;
    }
    // Scraped twice more, so every rate has two samples after the traffic.
    let seen = values(&prometheus.query("count_over_time(up[5m])").await).first().copied().unwrap_or(0.0);
    prometheus
        .until("two more scrapes", "count_over_time(up[5m])", |result| {
            values(result).first().is_some_and(|count| *count >= seen + 2.0)
        })
        .await;

    // The earlier service's gauge names, recorded from the served gauges.
    for (old, new) in [
        ("chatbox_websocket_connections_total", "chatbox_websocket_connections"),
        ("chatbox_active_sessions_total", "chatbox_active_sessions"),
    ] {
        prometheus.until(&format!("{old} recorded"), old, has_data).await;
        let (old_values, new_values) =
            (values(&prometheus.query(old).await), values(&prometheus.query(new).await));
        assert_eq!(old_values.len(), new_values.len(), "{old} has one series per {new} series");
    }

    let mut empty = Vec::new();
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "the dashboard has its panels: {queries:?}");
    for (panel, expr) in &queries {
        if !has_data(&prometheus.query(expr).await) {
            empty.push(format!("dashboard panel {panel:?}: {expr}"));
        }
    }

    let rules = prometheus.api("rules", &[]).await.expect("rules");
    let mut alerts = 0;
    for group in rules["data"]["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            assert_eq!(rule["health"], "ok", "rule {} evaluates: {rule}", rule["name"]);
            if rule["type"] == "alerting" {
                alerts += 1;
                let measured = measured_side(rule["query"].as_str().expect("query"));
                if !has_data(&prometheus.query(&measured).await) {
                    empty.push(format!("alert {}: {measured}", rule["name"]));
                }
            }
        }
    }
    assert!(alerts >= 7, "the rules file has its alerts: {rules}");
    assert!(empty.is_empty(), "queries that returned no data:\n{}", empty.join("\n"));
}
