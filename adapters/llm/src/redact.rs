//! Redaction of credentials from provider text before it is logged or put into an error.
//!
//! Providers (and the proxies in front of them) sometimes echo the request headers in
//! an error body, so anything the adapter logs may hold the API key. [`redact`] replaces
//! with [`REDACTED`]: the configured key wherever it appears (also broken by line breaks,
//! and a prefix of it cut off by the end of a truncated body), and anything shaped like
//! a credential whatever the key: `Bearer <token>`, `sk-...` keys, and the value of a
//! credential-named field (`"api_key": "..."`, `x-api-key: ...`, `token=...`).
//! Invariant: redaction runs on the whole text first; truncation for the log comes
//! after, so a cut never leaves half a key unrecognised.

/// What a credential is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The shortest tail of the configured key (cut off by truncation) that is redacted:
/// shorter prefixes would match ordinary text.
const MIN_KEY_PREFIX: usize = 6;
/// The shortest `sk-` key body redacted in the middle of text (`sk-learn` is not a key);
/// at the very end of a text any length is, since truncation may have cut it.
const MIN_SK_BODY: usize = 12;
/// The same for the token after `Bearer` (`a bearer of bad news` is no credential).
const MIN_BEARER_TOKEN: usize = 8;
/// Field and header names whose value is a credential, compared in lower case without
/// `-` and `_`.
const CREDENTIAL_NAMES: [&str; 9] = [
    "apikey",
    "xapikey",
    "authorization",
    "proxyauthorization",
    "accesstoken",
    "token",
    "secret",
    "clientsecret",
    "password",
];

/// `text` with the configured `api_key` and every credential-shaped value replaced by
/// [`REDACTED`].
#[must_use]
pub fn redact(text: &str, api_key: Option<&str>) -> String {
    let mut out = match api_key.filter(|key| !key.is_empty()) {
        Some(key) => redact_key(text, key),
        None => text.to_owned(),
    };
    out = redact_fields(&out);
    out = redact_bearer(&out);
    redact_sk_keys(&out)
}

/// Replaces `key`, also when line breaks split it, and a long enough prefix of it at the
/// end of `text`.
fn redact_key(text: &str, key: &str) -> String {
    let bytes = text.as_bytes();
    let key = key.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        match match_key(&bytes[at..], key) {
            Some(len) => {
                out.push_str(&text[copied..at]);
                out.push_str(REDACTED);
                at += len;
                copied = at;
            }
            None => at += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// How many bytes of `text` match `key` from its start, skipping line breaks (and the
/// indentation after them) between key bytes; a prefix counts when `text` ends there.
fn match_key(text: &[u8], key: &[u8]) -> Option<usize> {
    let (mut t, mut k) = (0, 0);
    while k < key.len() {
        if t == text.len() {
            return (k >= MIN_KEY_PREFIX.min(key.len())).then_some(t);
        }
        if text[t] == key[k] {
            t += 1;
            k += 1;
        } else if k > 0 && (text[t] == b'\n' || text[t] == b'\r') {
            t += 1;
            while t < text.len() && matches!(text[t], b' ' | b'\t' | b'\r' | b'\n') {
                t += 1;
            }
        } else {
            return None;
        }
    }
    Some(t)
}

const fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

/// The end of the token starting at `from`.
fn token_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|b| !is_token_byte(*b)).map_or(bytes.len(), |len| from + len)
}

/// Replaces the token after `Bearer` (any case, after a space or tab).
fn redact_bearer(text: &str) -> String {
    redact_after_marker(text, b"bearer", true, MIN_BEARER_TOKEN)
}

/// Replaces `sk-...` keys (`sk-proj-...`, `sk-ant-...`, ...).
fn redact_sk_keys(text: &str) -> String {
    redact_after_marker(text, b"sk-", false, MIN_SK_BODY)
}

/// Replaces what follows each `marker` (any case) at the start of a word: the token
/// after it (after blanks when `spaced`, which they must then be), when it is at least
/// `min_len` bytes long or runs to the end of `text` (where truncation may have cut it).
/// A spaced marker keeps itself (`Bearer [redacted]`); an unspaced one is part of the
/// token and goes with it.
fn redact_after_marker(text: &str, marker: &[u8], spaced: bool, min_len: usize) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = find_ignore_case(&bytes[at..], marker) {
        let start = at + found;
        let word_start = start == 0
            || if spaced {
                !bytes[start - 1].is_ascii_alphanumeric()
            } else {
                !is_token_byte(bytes[start - 1])
            };
        let mut token = start + marker.len();
        let blanks = token < bytes.len() && matches!(bytes[token], b' ' | b'\t');
        while spaced && token < bytes.len() && matches!(bytes[token], b' ' | b'\t') {
            token += 1;
        }
        let end = token_end(bytes, token);
        let long_enough = end - token >= min_len || (end == bytes.len() && end > token);
        if word_start && blanks == spaced && long_enough {
            out.push_str(&text[copied..if spaced { token } else { start }]);
            out.push_str(REDACTED);
            copied = end;
            at = end;
        } else {
            at = start + 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Replaces the value of every credential-named field: `"name": "value"`,
/// `name: value`, `name=value` (the name quoted or not, any case).
fn redact_fields(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if !is_name_byte(bytes[at]) || (at > 0 && is_name_byte(bytes[at - 1])) {
            at += 1;
            continue;
        }
        let name_end = bytes[at..].iter().position(|b| !is_name_byte(*b)).map_or(bytes.len(), |len| at + len);
        let name: String = text[at..name_end]
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if !CREDENTIAL_NAMES.contains(&name.as_str()) {
            at = name_end;
            continue;
        }
        match field_value(bytes, name_end) {
            Some((start, end)) if end > start => {
                out.push_str(&text[copied..start]);
                out.push_str(REDACTED);
                copied = end;
                at = end;
            }
            _ => at = name_end,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The byte range of the value after a field name ending at `from`: past a closing
/// quote, `:` or `=`, spaces and an opening quote; a quoted value runs to its closing
/// quote (or the end of a truncated text), a bare one to the end of its token, also
/// holding a scheme such as `Bearer ` before the token.
fn field_value(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let skip_spaces = |mut i: usize| {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        i
    };
    let mut i = from;
    if i < bytes.len() && matches!(bytes[i], b'"' | b'\'') {
        i += 1;
    }
    i = skip_spaces(i);
    if i >= bytes.len() || !matches!(bytes[i], b':' | b'=') {
        return None;
    }
    i = skip_spaces(i + 1);
    if i < bytes.len() && matches!(bytes[i], b'"' | b'\'') {
        let quote = bytes[i];
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && bytes[end] != quote {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        return Some((start, end.min(bytes.len())));
    }
    let mut end = token_end(bytes, i);
    // `Authorization: Basic abc` / `Bearer abc`: the scheme and its token together.
    let after_scheme = skip_spaces(end);
    if after_scheme > end && after_scheme < bytes.len() && is_token_byte(bytes[after_scheme]) {
        let scheme = &bytes[i..end];
        if scheme.iter().all(u8::is_ascii_alphabetic) && scheme.len() <= 10 {
            end = token_end(bytes, after_scheme);
        }
    }
    Some((i, end))
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "prov-K3y-0123456789abcdef";

    fn clean(text: &str) -> String {
        redact(text, Some(KEY))
    }

    #[test]
    fn the_configured_key_is_removed_wherever_it_appears() {
        let placements = [
            format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#),
            format!("you sent {KEY}, which is wrong"),
            KEY.to_owned(),
            format!("a{KEY}b"),
            format!(r#"{{"headers":{{"x-custom":"{KEY}"}}}}"#),
            format!("twice: {KEY} and {KEY}."),
        ];
        for text in placements {
            let out = clean(&text);
            assert!(!out.contains(KEY) && !out.contains("0123456789abcdef"), "{text} -> {out}");
            assert!(out.contains(REDACTED), "{text} -> {out}");
        }
    }

    #[test]
    fn a_key_split_by_line_breaks_or_cut_by_truncation_is_removed() {
        for cut in 1..KEY.len() {
            let (head, tail) = KEY.split_at(cut);
            for wrap in ["\n", "\r\n", "\n    "] {
                let text = format!("key: {head}{wrap}{tail} end");
                let out = clean(&text);
                assert!(!out.contains(tail) || tail.len() < 3, "{text:?} -> {out:?}");
                assert!(out.contains(REDACTED), "{text:?} -> {out:?}");
            }
            if cut >= MIN_KEY_PREFIX {
                let truncated = format!("echo {head}");
                let out = clean(&truncated);
                assert!(!out.contains(head), "{truncated:?} -> {out:?}");
            }
        }
    }

    #[test]
    fn credential_shapes_are_removed_without_knowing_the_key() {
        let cases = [
            ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF"),
            ("authorization: bearer abc.DEF-123_xyz", "abc.DEF"),
            (r#"{"Authorization":"Bearer abc.DEF-123_xyz"}"#, "abc.DEF"),
            (r#"{"api_key": "plain-secret-value"}"#, "plain-secret-value"),
            (r#"{"apiKey":"plain-secret-value","model":"m"}"#, "plain-secret-value"),
            ("x-api-key: plain-secret-value\ncontent-type: json", "plain-secret-value"),
            ("X-Api-Key=plain-secret-value&b=1", "plain-secret-value"),
            ("see sk-proj-AbCdEfGhIjKlMnOpQrSt here", "AbCdEfGh"),
            ("key sk-ant-api03-AbCdEfGhIjKlMnOpQrSt", "AbCdEfGh"),
            ("cut at the end: sk-ant-ap", "sk-ant-ap"),
            (r#"{"token": "tok\"en-with-quote"}"#, "en-with-quote"),
            (r#"{"access_token":"truncated-val"#, "truncated-val"),
        ];
        for (text, secret) in cases {
            let out = redact(text, None);
            assert!(!out.contains(secret), "{text} -> {out}");
            assert!(out.contains(REDACTED), "{text} -> {out}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let texts = [
            r#"{"error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            r#"{"max_tokens": 256, "model": "gpt-4o", "tokens": 3}"#,
            "the task-list uses sk-learn and a bearer of bad news",
            "Bearer",
            "",
            "ünïcödé ✓ text with Bearer\u{a0}",
        ];
        for text in texts {
            assert_eq!(redact(text, Some(KEY)), text);
        }
    }

    #[test]
    fn an_empty_or_short_key_does_not_eat_the_text() {
        assert_eq!(redact("abc", Some("")), "abc");
        assert_eq!(redact("xx ab", Some("abc")), "xx ab", "a short key's prefix is not redacted");
        assert_eq!(redact("xx abc", Some("abc")), format!("xx {REDACTED}"));
    }

    #[test]
    fn redaction_never_panics_and_never_grows_a_secret() {
        // Every cut of a text holding several credentials: byte boundaries, UTF-8 and
        // truncation are where a scanner breaks.
        let text =
            format!("é {{\"api_key\":\"v1\",\"auth\":\"Bearer {KEY}\"}}\nx-api-key: {KEY}\r\nsk-ant-{KEY} ✓");
        for end in (0..=text.len()).filter(|i| text.is_char_boundary(*i)) {
            let out = clean(&text[..end]);
            assert!(!out.contains("0123456789"), "{:?} -> {out:?}", &text[..end]);
        }
    }
}
