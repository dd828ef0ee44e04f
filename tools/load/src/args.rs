//! A small command-line parser: `--name value` flags and `--switch` booleans after the
//! subcommand, every flag checked against the names a subcommand reads, so a mistyped
//! flag fails instead of being ignored.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{Context, bail};

/// The flags given to one subcommand.
#[derive(Debug, Default)]
pub struct Args {
    values: BTreeMap<String, String>,
    switches: Vec<String>,
}

/// Flags that take no value.
const SWITCHES: &[&str] = &["quick", "no-session", "help"];

/// Flags every subcommand takes: the results file and a free-text label stored in it.
const COMMON: &[&str] = &["out", "label"];

impl Args {
    /// Parses `--name value` pairs and the known switches.
    pub fn parse(raw: &[String]) -> anyhow::Result<Self> {
        let mut args = Self::default();
        let mut items = raw.iter();
        while let Some(item) = items.next() {
            let Some(name) = item.strip_prefix("--") else { bail!("unexpected argument {item:?}") };
            if let Some((name, value)) = name.split_once('=') {
                args.values.insert(name.to_owned(), value.to_owned());
            } else if SWITCHES.contains(&name) {
                args.switches.push(name.to_owned());
            } else {
                let value = items.next().with_context(|| format!("--{name} needs a value"))?;
                args.values.insert(name.to_owned(), value.clone());
            }
        }
        Ok(args)
    }

    /// Fails when a flag is not among `known` (the subcommand's flags).
    pub fn check(&self, known: &[&str]) -> anyhow::Result<()> {
        for name in self.values.keys().chain(self.switches.iter()) {
            let name_str = name.as_str();
            if !known.contains(&name_str) && !SWITCHES.contains(&name_str) && !COMMON.contains(&name_str) {
                bail!("unknown flag --{name} (this subcommand takes: --{})", known.join(", --"));
            }
        }
        Ok(())
    }

    /// Whether a switch was given.
    pub fn flag(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// A flag's raw text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A flag parsed, or `default` when absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| anyhow::anyhow!("--{name} {raw:?}: {e}")),
        }
    }

    /// A flag parsed, `quick` in quick mode and `full` otherwise when absent.
    pub fn sized<T: FromStr>(&self, name: &str, full: T, quick: T) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let default = if self.flag("quick") { quick } else { full };
        self.get(name, default)
    }

    /// A required flag, parsed.
    pub fn required<T: FromStr>(&self, name: &str) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.values.get(name).with_context(|| format!("--{name} is required"))?;
        raw.parse().map_err(|e| anyhow::anyhow!("--{name} {raw:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(items: &[&str]) -> anyhow::Result<Args> {
        Args::parse(&items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn values_switches_and_quick_sizes() {
        let args = parse(&["--sockets", "5", "--quick", "--rate=2.5", "--out", "x.json"]).expect("parses");
        args.check(&["sockets", "rate"]).expect("known flags");
        assert_eq!(args.get("sockets", 1usize).expect("a number"), 5);
        assert!((args.get("rate", 0.0f64).expect("a number") - 2.5).abs() < f64::EPSILON);
        assert_eq!(args.sized("duration", 30u32, 3).expect("default"), 3);
        assert_eq!(args.text("out"), Some("x.json"));
    }

    #[test]
    fn unknown_flags_and_missing_values_fail() {
        let args = parse(&["--sokets", "5"]).expect("parses");
        assert!(args.check(&["sockets"]).is_err());
        assert!(parse(&["--sockets"]).is_err());
        assert!(parse(&["sockets"]).is_err());
        assert!(parse(&[]).expect("empty").required::<u32>("pid").is_err());
    }
}
