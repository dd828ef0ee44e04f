//! What `/proc` says about a process: its resident set (`VmRSS` of `/proc/P/status`)
//! and its CPU time (`utime` + `stime` of `/proc/P/stat`, in clock ticks).

use std::time::Duration;

use anyhow::Context;

/// Linux fixes `USER_HZ` at 100 for user space on every common architecture.
const TICKS_PER_SECOND: u64 = 100;

/// The resident set of `pid` in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).context("VmRSS is not a number")
}

/// CPU time used so far, all threads, user and system.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl Cpu {
    /// The CPU time of `pid`, or of this process with `None`.
    pub fn of(pid: Option<u32>) -> anyhow::Result<Self> {
        let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |pid| format!("/proc/{pid}/stat"));
        let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        // The command name (field 2) may hold spaces: count fields after its `)`.
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |n: usize| -> anyhow::Result<Duration> {
            let value: u64 = fields.get(n).and_then(|v| v.parse().ok()).context("malformed stat field")?;
            Ok(Duration::from_millis(value * 1000 / TICKS_PER_SECOND))
        };
        // utime and stime are fields 14 and 15; `rest` starts at field 3.
        Ok(Self { user: ticks(11)?, system: ticks(12)? })
    }

    /// The CPU time of several processes together (the replicas of one service).
    pub fn of_all(pids: &[u32]) -> anyhow::Result<Self> {
        pids.iter().try_fold(Self::default(), |sum, &pid| {
            let one = Self::of(Some(pid))?;
            Ok(Self { user: sum.user + one.user, system: sum.system + one.system })
        })
    }

    /// The time used since `earlier`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// User plus system time.
    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

/// Cores the machine has (for the tool's share of the machine).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
