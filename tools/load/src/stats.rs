//! Latency histograms (HDR, nanoseconds, three significant digits) and their summary as
//! JSON, what clients count of the answers they read, and the results file every
//! subcommand writes.

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::client::markers;

/// Latencies of one kind: every token, and the steady state (each answer's first two
/// tokens left out).
#[derive(Debug, Clone)]
pub struct Latencies {
    pub all: Histogram<u64>,
    pub steady: Histogram<u64>,
}

/// What clients counted: of the gateway (or the floor), or the direct readers of the
/// mock (which count no frames and no errors).
#[derive(Debug, Default)]
pub struct Tally {
    pub latencies: Latencies,
    pub tokens: u64,
    pub frames: u64,
    pub answers: u64,
    pub lost: u64,
    pub out_of_order: u64,
    pub errors: u64,
}

impl Tally {
    /// Adds another client's counts.
    pub fn merge(&mut self, other: &Self) {
        self.latencies.merge(&other.latencies);
        self.tokens += other.tokens;
        self.frames += other.frames;
        self.answers += other.answers;
        self.lost += other.lost;
        self.out_of_order += other.out_of_order;
        self.errors += other.errors;
    }
}

/// One answer's tokens as they arrive: each marked with its index and send time (see
/// `client::markers`), so a gap is a lost token and a step back a reordered one.
#[derive(Debug, Default)]
pub struct AnswerTokens {
    next: usize,
    received: usize,
}

impl AnswerTokens {
    /// Counts the tokens marked in `content`, received at `received_ns`.
    pub fn count(&mut self, content: &str, received_ns: u64, tally: &mut Tally) {
        for (index, sent) in markers(content) {
            if index < self.next {
                tally.out_of_order += 1;
            }
            self.next = index + 1;
            self.received += 1;
            tally.tokens += 1;
            tally.latencies.record(index, received_ns.saturating_sub(sent));
        }
    }

    /// The answer ended: it counts, and so does every token of the `expected` missing.
    pub fn end(self, expected: usize, tally: &mut Tally) {
        tally.lost += expected.saturating_sub(self.received) as u64;
        tally.answers += 1;
    }
}

/// An empty histogram from 1 ns to 10 minutes.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("static bounds are valid")
}

impl Default for Latencies {
    fn default() -> Self {
        Self { all: histogram(), steady: histogram() }
    }
}

impl Latencies {
    /// Records one token's latency; `index` is its place in its answer.
    pub fn record(&mut self, index: usize, nanos: u64) {
        let nanos = nanos.max(1);
        self.all.saturating_record(nanos);
        if index >= 2 {
            self.steady.saturating_record(nanos);
        }
    }

    /// Adds another task's latencies.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.all.add(&other.all);
        let _ = self.steady.add(&other.steady);
    }
}

/// The percentiles reported, as `(name, quantile)`.
const QUANTILES: [(&str, f64); 5] =
    [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999), ("p9999", 0.9999)];

/// `{count, mean_us, p50_us, …, max_us}` of a histogram.
pub fn summary(h: &Histogram<u64>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("count".into(), json!(h.len()));
    out.insert("mean_us".into(), json!(round(h.mean() / 1000.0)));
    for (name, q) in QUANTILES {
        out.insert(format!("{name}_us"), json!(us(h.value_at_quantile(q))));
    }
    out.insert("max_us".into(), json!(us(h.max())));
    Value::Object(out)
}

/// What the gateway adds: its percentiles minus the direct readers' ones.
pub fn added(gateway: &Histogram<u64>, direct: &Histogram<u64>) -> Value {
    let mut out = serde_json::Map::new();
    for (name, q) in QUANTILES {
        let delta = us(gateway.value_at_quantile(q)) - us(direct.value_at_quantile(q));
        out.insert(format!("{name}_us"), json!(round(delta)));
    }
    Value::Object(out)
}

/// Nanoseconds as microseconds, three decimals.
pub fn us(nanos: u64) -> f64 {
    round(nanos as f64 / 1000.0)
}

/// Three decimals.
pub fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Prints a one-line view of a latency summary.
pub fn line(label: &str, s: &Value) -> String {
    format!(
        "{label}: p50 {} µs, p99 {} µs, p999 {} µs, max {} µs ({} samples)",
        s["p50_us"], s["p99_us"], s["p999_us"], s["max_us"], s["count"]
    )
}

/// Writes the results to `--out` when given.
pub fn write(out: Option<&str>, results: &Value) -> anyhow::Result<()> {
    if let Some(path) = out {
        let text = serde_json::to_string_pretty(results).context("encode results")?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {path}"))?;
        println!("results written to {path}");
    }
    Ok(())
}

/// The machine's load average (1, 5, 15 minutes), for the record.
pub fn load_average() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| text.split_whitespace().take(3).filter_map(|v| v.parse::<f64>().ok()).collect::<Vec<_>>())
        .map_or(Value::Null, |v| json!(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_state_leaves_out_the_first_two_tokens() {
        let mut latencies = Latencies::default();
        for index in 0..5 {
            latencies.record(index, 1000);
        }
        assert_eq!(latencies.all.len(), 5);
        assert_eq!(latencies.steady.len(), 3);
        let summary = summary(&latencies.all);
        assert_eq!(summary["count"], 5);
        assert!((summary["p50_us"].as_f64().expect("a number") - 1.0).abs() < 0.01);
    }

    #[test]
    fn an_answer_counts_its_tokens_a_step_back_as_reordered_and_what_is_missing_as_lost() {
        let mut tally = Tally::default();
        let mut answer = AnswerTokens::default();
        answer.count("t100#0 t100#1 ", 250, &mut tally);
        answer.count("t100#3 t100#2 ", 300, &mut tally);
        answer.end(5, &mut tally);
        assert_eq!((tally.tokens, tally.out_of_order, tally.lost, tally.answers), (4, 1, 1, 1));
        assert_eq!(tally.latencies.all.max(), 200);

        let mut all = Tally::default();
        all.merge(&tally);
        all.merge(&tally);
        assert_eq!((all.tokens, all.out_of_order, all.lost, all.answers), (8, 2, 2, 2));
        assert_eq!(all.latencies.all.len(), 8);
    }
}
