//! Text helpers shared by the channels. Alerts carry user-chosen text (session ids and
//! names): before it goes into a message it is made one line ([`one_line`]) so it cannot
//! fake a line of its own (a `Link:` in an email body, an extra line in an SMS), and it is
//! cut only at character boundaries so a multi-byte character never splits.

/// The first `max` characters of `value`.
#[must_use]
pub fn prefix_chars(value: &str, max: usize) -> &str {
    match value.char_indices().nth(max) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

/// `value` on one line: every run of control characters (CR, LF, tab, …) and of Unicode
/// line or paragraph separators becomes one space.
#[must_use]
pub fn one_line(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_break = false;
    for c in value.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            if !in_break {
                out.push(' ');
            }
            in_break = true;
        } else {
            out.push(c);
            in_break = false;
        }
    }
    out
}

/// `value` cut to at most `max` characters, ending in `...` when it was cut.
#[must_use]
pub fn truncate_chars(value: &str, max: usize) -> String {
    const MARK: &str = "...";
    if value.chars().count() <= max {
        return value.to_owned();
    }
    let keep = max.saturating_sub(MARK.len());
    let mut out = prefix_chars(value, keep).to_owned();
    out.push_str(&MARK[..max.min(MARK.len())]);
    out
}

/// The last `n` characters of `value`, for naming a recipient in a log line without
/// writing out the whole address or number.
#[must_use]
pub fn tail_chars(value: &str, n: usize) -> &str {
    let count = value.chars().count();
    match value.char_indices().nth(count.saturating_sub(n)) {
        Some((start, _)) => &value[start..],
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_tails_count_characters_not_bytes() {
        assert_eq!(prefix_chars("ééééééééé", 8), "éééééééé");
        assert_eq!(prefix_chars("abc", 8), "abc");
        assert_eq!(tail_chars("+15551234567", 4), "4567");
        assert_eq!(tail_chars("ab", 4), "ab");
    }

    #[test]
    fn breaks_collapse_to_one_space() {
        assert_eq!(one_line("a\r\nBcc: x\u{2028}y\tz"), "a Bcc: x y z");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn truncation_respects_the_limit_and_char_boundaries() {
        assert_eq!(truncate_chars("short", 10), "short");
        let cut = truncate_chars(&"é".repeat(400), 320);
        assert_eq!(cut.chars().count(), 320);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_chars("abcdef", 2), "..");
    }
}
