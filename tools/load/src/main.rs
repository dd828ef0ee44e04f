//! `chatbox-load`: a load generator that drives a running server over loopback and
//! measures it from the outside (its memory and CPU time from `/proc/<pid>`), against
//! baselines run in the same sitting: direct readers of the mock provider (what the
//! gateway adds to latency), the `floor` server (what a bare tokio-tungstenite socket
//! costs; with `--provider`, what a bare streaming proxy costs per token) and, when
//! installed, Centrifugo. See `docs/benchmarks.md`, "Load generator".

mod args;
mod churn;
mod client;
mod fanout;
mod floor;
mod floor_proxy;
mod idle;
mod mock;
mod procfs;
mod stats;
mod stream;

use anyhow::Context;

use crate::args::Args;

/// The mock provider's port unless `--mock-port` says otherwise: the server under test
/// is started with `LLM_PROVIDER_1_ENDPOINT=http://127.0.0.1:18081/v1`.
pub const DEFAULT_MOCK_PORT: u16 = 18081;

const USAGE: &str = "\
usage: chatbox-load <subcommand> [--flag value …] [--quick] [--out results.json]

  idle    --pid P [--sockets N] [--no-session] [--open-concurrency 32]
  stream  --pid P [--concurrency C] [--tokens T] [--rate R] [--duration S] [--direct D]
  fanout  [--pid P] [--watchers K] [--tokens T] [--rate R] [--duration S]
  fanout  --url ws://A/chat/ws,ws://B/chat/ws --pid PA,PB …
                                      one session watched over replicas sharing a hub
  churn   [--pid P] [--duration S] [--workers W]
  stream  --target floor --url ws://127.0.0.1:9090/chat/ws --pid <floor pid> [--mock-port M] …
                                      the same run against a floor started with --provider
  floor   [--port 9090] [--provider http://127.0.0.1:18081/v1]
                                      run the floor server (foreground); with --provider it
                                      streams answers from that provider (for stream)
  env     [--port 8080] [--mock-port 18081] [--secret S]
                                      print the environment to start the server with

Common: --target chatbox|floor|centrifugo (default chatbox), --url ws://…, --secret S
(or JWT_SECRET), --mock-port 18081 (the embedded mock provider), --quick (CI sizes),
--out results.json, --label TEXT (stored in the results, used by scripts/bench-charts.py).";

fn main() -> anyhow::Result<()> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = raw.split_first() else {
        println!("{USAGE}");
        return Ok(());
    };
    let args = Args::parse(rest)?;
    if args.flag("help") || command == "help" || command == "--help" {
        println!("{USAGE}");
        return Ok(());
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    runtime.block_on(async {
        let results = match command.as_str() {
            "idle" => idle::run(&args).await?,
            "stream" => stream::run(&args).await?,
            "fanout" => fanout::run(&args).await?,
            "churn" => churn::run(&args).await?,
            "floor" => {
                args.check(&["port", "provider"])?;
                return floor::run(args.get("port", 9090)?, args.text("provider")).await;
            }
            "env" => {
                args.check(&["port", "mock-port", "secret"])?;
                print_env(&args)?;
                return Ok(());
            }
            other => anyhow::bail!("unknown subcommand {other:?}\n\n{USAGE}"),
        };
        let mut results = results;
        results["quick"] = serde_json::json!(args.flag("quick"));
        results["label"] = serde_json::json!(args.text("label"));
        results["load_average"] = stats::load_average();
        results["cores"] = serde_json::json!(procfs::cores());
        stats::write(args.text("out"), &results)
    })
}

/// A run's id (seconds since the epoch, in hex): users of different runs never collide.
pub fn run_id() -> String {
    format!("{:x}", client::now_ns() / 1_000_000_000)
}

/// Prints the environment the server under test needs, to `eval` or paste.
fn print_env(args: &Args) -> anyhow::Result<()> {
    let port: u16 = args.get("port", 8080)?;
    let mock: u16 = args.get("mock-port", DEFAULT_MOCK_PORT)?;
    let secret = match args.text("secret") {
        Some(secret) => secret.to_owned(),
        // Fixed-width fields: the server refuses a secret under 32 bytes, and a small
        // process id written in hex would make one.
        None => format!("load-{:016x}-{:08x}-KzQw", client::now_ns(), std::process::id()),
    };
    for (name, value) in [
        ("JWT_SECRET", secret.as_str()),
        ("SERVER_HOST", "127.0.0.1"),
        ("SERVER_PORT", &port.to_string()),
        ("LLM_PROVIDER_1_ID", "load"),
        ("LLM_PROVIDER_1_TYPE", "openai"),
        ("LLM_PROVIDER_1_ENDPOINT", &format!("http://127.0.0.1:{mock}/v1")),
        ("LLM_PROVIDER_1_API_KEY", "sk-load-generator"),
        ("LLM_PROVIDER_1_MODEL", "load"),
        ("LLM_MAX_RETRIES", "0"),
        ("RATE_LIMIT", "1000000"),
        ("WS_COMMAND_BUDGET", "1000000"),
        ("MAX_CONNECTIONS", "50000"),
        ("MAX_CONNECTIONS_PER_USER", "5000"),
        ("MAX_ACTIVE_SESSIONS_PER_USER", "1000"),
        ("MEMORY_STORE_MAX_SESSIONS", "100000"),
        ("HTTP_MAX_PENDING_CONNECTIONS", "4096"),
        ("UPLOAD_DIR", "/tmp/chatbox-load-uploads"),
        ("LOG_LEVEL", "warn"),
    ] {
        println!("export {name}={value}");
    }
    Ok(())
}
