//! Reading raw values into typed ones. A [`Reader`] never stops at the first problem: it
//! records one message per problem, each starting with the variable's name, and hands
//! back a default so the rest of the configuration is still checked.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use validator::Validate;

use super::source::Source;
use super::syntax::is_origin;

/// The longest duration any setting accepts. Durations are added to clock readings;
/// a bound keeps every such sum far from overflowing, whatever an operator types.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// A whole-number setting type, with its range for error messages.
pub(super) trait WholeNumber: FromStr + Copy {
    /// The largest value of the type.
    const MAX: u64;
}

impl WholeNumber for u16 {
    const MAX: u64 = u16::MAX as u64;
}

impl WholeNumber for u32 {
    const MAX: u64 = u32::MAX as u64;
}

impl WholeNumber for usize {
    const MAX: u64 = u32::MAX as u64;
}

/// Byte counts: capped at 1 PiB, far above any sane setting, so that sums of them
/// cannot overflow.
impl WholeNumber for u64 {
    const MAX: u64 = 1 << 50;
}

/// Reads variables from a [`Source`], collecting problems and warnings.
pub(super) struct Reader<'a> {
    pub source: &'a Source,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn new(source: &'a Source) -> Self {
        Self { source, errors: Vec::new(), warnings: Vec::new() }
    }

    /// Records a problem with `name`.
    pub fn fail(&mut self, name: &str, problem: impl std::fmt::Display) {
        self.errors.push(format!("{name}: {problem}"));
    }

    /// The trimmed text of `name`, if set and not empty.
    pub fn text(&self, name: &str) -> Option<String> {
        self.source.get(name).map(str::to_owned)
    }

    /// A whole number (`usize` values are capped at `u32::MAX`, far above any sane
    /// setting, so that later arithmetic on them cannot overflow).
    pub fn number<T: WholeNumber>(&mut self, name: &str, default: T) -> T {
        let Some(raw) = self.source.get(name) else {
            return default;
        };
        let parsed = raw.parse::<u64>().ok().filter(|n| *n <= T::MAX).and_then(|_| raw.parse::<T>().ok());
        parsed.unwrap_or_else(|| {
            let whole = raw.parse::<i128>().is_ok();
            let max = T::MAX;
            if whole {
                self.fail(name, format!("must be between 0 and {max}, got {raw}"));
            } else {
                self.fail(name, format!("must be a whole number (0 to {max}), got {raw:?}"));
            }
            default
        })
    }

    /// A positive duration of at most a year.
    pub fn duration(&mut self, name: &str, default: &str) -> Duration {
        let raw = self.source.get(name).unwrap_or(default).to_owned();
        match humantime::parse_duration(&raw) {
            Ok(duration) if duration.is_zero() => {
                self.fail(name, "must be greater than zero");
                Duration::from_secs(1)
            }
            Ok(duration) if duration > MAX_DURATION => {
                self.fail(name, "must be at most 366d");
                Duration::from_secs(1)
            }
            Ok(duration) => duration,
            Err(_) => {
                self.fail(name, format!("must be a duration such as 100ms, 30s, 5m or 1h, got {raw:?}"));
                Duration::from_secs(1)
            }
        }
    }

    /// `true`/`false` (also 1/0, yes/no, on/off).
    pub fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.source.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("true" | "1" | "yes" | "on") => true,
            Some("false" | "0" | "no" | "off") => false,
            Some(other) => {
                self.fail(name, format!("must be true or false, got {other:?}"));
                default
            }
        }
    }

    /// A comma list, entries trimmed, empty entries dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.source.get(name).map(split_list).unwrap_or_default()
    }

    /// A comma list of CIDR blocks (a bare address is a /32 or /128).
    pub fn cidrs(&mut self, name: &str, default: &str) -> Vec<IpNet> {
        let raw = self.source.get_raw(name).unwrap_or(default).to_owned();
        let mut networks = Vec::new();
        for entry in split_list(&raw) {
            match entry.parse::<IpNet>().or_else(|_| entry.parse::<IpAddr>().map(IpNet::from)) {
                Ok(network) => networks.push(network),
                Err(_) => self.fail(name, format!("{entry:?} is not a CIDR block such as 10.0.0.0/8")),
            }
        }
        networks
    }

    /// Exact origins (`scheme://host[:port]`); `*` is refused.
    pub fn origins(&mut self, name: &str, list: Vec<String>) -> Vec<String> {
        for origin in &list {
            if origin == "*" {
                self.fail(name, "\"*\" is not allowed; list the exact origins (scheme://host[:port])");
            } else if !is_origin(origin) {
                self.fail(name, format!("{origin:?} is not an origin (scheme://host[:port], no path)"));
            }
        }
        list
    }

    /// Reports each range rule of `section` (its `#[validate]` attributes) that a value
    /// breaks, under the variable the field is named after, sorted by name.
    pub fn check_ranges(&mut self, section: &impl Validate) {
        let Err(errors) = section.validate() else {
            return;
        };
        let mut fields: Vec<_> = errors.field_errors().into_iter().collect();
        fields.sort_by_key(|(field, _)| field.to_string());
        for (field, problems) in fields {
            for problem in problems {
                let message = problem.message.as_deref().unwrap_or("is out of range");
                self.fail(&field.to_ascii_uppercase(), message);
            }
        }
    }
}

/// Splits a comma list, trimming entries and dropping empty ones.
pub(super) fn split_list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_of(vars: &[(&str, &str)]) -> Source {
        Source::new(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())), None).expect("source")
    }

    #[test]
    fn out_of_range_numbers_say_the_range_and_junk_says_whole_number() {
        let source = reader_of(&[("A", "70000"), ("B", "ten"), ("C", "-1"), ("D", "65535")]);
        let mut r = Reader::new(&source);
        assert_eq!(r.number::<u16>("A", 1), 1);
        assert_eq!(r.number::<u16>("B", 1), 1);
        assert_eq!(r.number::<u16>("C", 1), 1);
        assert_eq!(r.number::<u16>("D", 1), 65_535);
        assert_eq!(
            r.errors,
            [
                "A: must be between 0 and 65535, got 70000",
                "B: must be a whole number (0 to 65535), got \"ten\"",
                "C: must be between 0 and 65535, got -1",
            ]
        );
    }

    #[test]
    fn durations_are_positive_and_bounded() {
        let source = reader_of(&[("A", "0s"), ("B", "500000y"), ("C", "5m")]);
        let mut r = Reader::new(&source);
        let _ = r.duration("A", "1s");
        let _ = r.duration("B", "1s");
        assert_eq!(r.duration("C", "1s"), Duration::from_secs(300));
        assert_eq!(r.errors, ["A: must be greater than zero", "B: must be at most 366d"]);
    }
}
