//! The logging section: `LOG_LEVEL` (a level, or a `target=level` list) and `LOG_FORMAT`
//! (JSON lines, or pretty lines by default under `--dev`).
//!
//! An unreadable level is reported and replaced by `info`, so the other problems are
//! still logged: a filter library would read `warning` as a target name and silence
//! every line, the validation failures included.

use super::reader::Reader;

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// `LOG_*`.
#[derive(Debug, Clone)]
pub struct TelemetrySection {
    /// `LOG_LEVEL`, lower case.
    pub log_level: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
}

impl TelemetrySection {
    /// Reads the section; under `--dev` the format defaults to pretty lines.
    pub(super) fn read(r: &mut Reader<'_>, dev: bool) -> Self {
        let mut log_level = r.text("LOG_LEVEL").map_or_else(|| "info".into(), |l| l.to_ascii_lowercase());
        if !valid_log_filter(&log_level) {
            r.fail(
                "LOG_LEVEL",
                format!(
                    "{log_level:?} is not a level (error, warn, info, debug, trace, off) or target=level list"
                ),
            );
            log_level = "info".into();
        }
        let log_format = match r.text("LOG_FORMAT").map(|f| f.to_ascii_lowercase()).as_deref() {
            None => {
                if dev {
                    LogFormat::Pretty
                } else {
                    LogFormat::Json
                }
            }
            Some("json") => LogFormat::Json,
            Some("pretty" | "text") => LogFormat::Pretty,
            Some(other) => {
                r.fail("LOG_FORMAT", format!("must be json or pretty, got {other:?}"));
                LogFormat::Json
            }
        };
        Self { log_level, log_format }
    }
}

/// A log filter: a level, or comma-separated `target=level` directives (and levels).
fn valid_log_filter(filter: &str) -> bool {
    let is_level = |level: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level));
    let is_target = |target: &str| {
        !target.is_empty() && target.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    };
    !filter.trim().is_empty()
        && filter.split(',').map(str::trim).all(|directive| match directive.split_once('=') {
            Some((target, level)) => is_target(target) && is_level(level),
            None => is_level(directive),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_target_lists_are_filters_and_words_are_not() {
        for filter in ["info", "WARN", "chatbox=debug,warn", "hyper_util=off, info"] {
            assert!(valid_log_filter(filter), "{filter}");
        }
        for filter in ["warning", "", "chatbox=loud", "=info", "a b=info"] {
            assert!(!valid_log_filter(filter), "{filter}");
        }
    }
}
