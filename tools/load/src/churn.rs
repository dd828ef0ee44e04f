//! `churn`: sockets opened and closed in a loop by a few workers for a while; reports
//! connects per second and the time a connect takes (handshake and greeting).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::time::Instant as Deadline;

use crate::args::Args;
use crate::client::Target;
use crate::procfs::{Cpu, rss_kib};
use crate::stats::{self, histogram, summary};

/// Flags of `churn`.
pub const FLAGS: &[&str] = &["target", "url", "secret", "pid", "duration", "workers", "out"];

/// Users each worker cycles through, so a closing socket's slot is never waited for.
const USERS_PER_WORKER: usize = 8;

/// Runs `churn`.
pub async fn run(args: &Args) -> anyhow::Result<Value> {
    args.check(FLAGS)?;
    let target = Target::from_args(args)?;
    let pid: Option<u32> = args.text("pid").map(str::parse).transpose().context("--pid")?;
    let duration = Duration::from_secs_f64(args.sized("duration", 20.0, 3.0)?);
    let workers: usize = args.get("workers", 16)?;
    let run = crate::run_id();
    let rss_before = pid.map(rss_kib).transpose()?;
    let cpu_before = pid.map(|pid| Cpu::of(Some(pid))).transpose()?;
    let own_before = Cpu::of(None)?;
    let started = Instant::now();
    let until = Deadline::now() + duration;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let target = target.clone();
        let prefix = format!("churn-{run}-{w}");
        tasks.push(tokio::spawn(async move {
            let (mut times, mut failures, mut i) = (histogram(), 0u64, 0usize);
            while Deadline::now() < until {
                let begun = Instant::now();
                match target.open(&format!("{prefix}-{}", i % USERS_PER_WORKER), None).await {
                    Ok((mut socket, _)) => {
                        times.saturating_record(
                            u64::try_from(begun.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1),
                        );
                        let _ = socket.close(None).await;
                    }
                    Err(_) => failures += 1,
                }
                i += 1;
            }
            (times, failures)
        }));
    }
    let (mut times, mut failures) = (histogram(), 0u64);
    for task in tasks {
        let (one, failed) = task.await.context("a churn worker panicked")?;
        let _ = times.add(&one);
        failures += failed;
    }
    let wall = started.elapsed().as_secs_f64();
    let own_share = Cpu::of(None)?.since(own_before).total().as_secs_f64() / wall;
    let connects = times.len();
    let cpu = match (pid, cpu_before) {
        (Some(pid), Some(before)) => Some(Cpu::of(Some(pid))?.since(before)),
        _ => None,
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = pid.map(rss_kib).transpose()?;
    let results = json!({
        "subcommand": "churn",
        "target": target.kind,
        "workers": workers,
        "duration_s": stats::round(wall),
        "connects": connects,
        "failures": failures,
        "connects_per_s": stats::round(connects as f64 / wall),
        "connect_time": summary(&times),
        "server_cpu_us_per_connect": cpu.map(|cpu| stats::round(cpu.total().as_secs_f64() * 1e6 / connects.max(1) as f64)),
        "rss_kib": {"before": rss_before, "after_2s": rss_after},
        "tool_cpu_share_of_one_core": stats::round(own_share),
    });
    println!(
        "{connects} connects in {wall:.1} s: {} connects/s, {failures} failures, server CPU per connect {} µs, RSS {:?} -> {:?} KiB",
        results["connects_per_s"], results["server_cpu_us_per_connect"], rss_before, rss_after
    );
    println!("{}", stats::line("connect (handshake + greeting)", &results["connect_time"]));
    Ok(results)
}
