//! Latency histograms (HDR, nanoseconds, three significant digits) and their summary as
//! JSON, and the results file every subcommand writes.

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies of one kind: every token, and the steady state (each answer's first two
/// tokens left out).
#[derive(Debug, Clone)]
pub struct Latencies {
    pub all: Histogram<u64>,
    pub steady: Histogram<u64>,
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
}
