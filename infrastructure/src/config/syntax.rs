//! The shape rules of individual values: origins, endpoints, path prefixes, email
//! addresses, phone numbers, database names. (Encryption keys and their ids follow the
//! storage adapter's own parser.) Pure functions, no I/O.

use chatbox_domain::validation::{host_is_internal, is_invalid_numeric_host};

/// `scheme://host[:port]` with no path, query or credentials.
pub(super) fn is_origin(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' '])
}

/// The host part of an `http(s)://` URL, or `None` if it is not one.
fn url_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(host, _)| host)
    };
    Some((scheme, host))
}

/// Why an endpoint is refused: https anywhere, http only to internal hosts.
pub(super) fn endpoint_problem(url: &str) -> Option<&'static str> {
    let Some((scheme, host)) = url_host(url) else {
        return Some("must be an http(s) URL");
    };
    if host.is_empty() || host.contains(['@', ' ']) || is_invalid_numeric_host(host) {
        return Some("has no valid host");
    }
    match scheme {
        "https" => None,
        "http" if host_is_internal(host) || host.ends_with(".svc") => None,
        "http" => {
            Some("must use https (http is only allowed for loopback, private or cluster-internal hosts)")
        }
        _ => Some("must be an http(s) URL"),
    }
}

/// Why a link shown to people (`ADMIN_PANEL_URL`) is refused: any http(s) URL with a
/// host, without spaces.
pub(super) fn link_problem(url: &str) -> Option<&'static str> {
    match url_host(url) {
        Some(("http" | "https", host)) if !host.is_empty() && !url.contains(char::is_whitespace) => None,
        _ => Some("must be an http(s) URL such as https://admin.example.com/chat"),
    }
}

/// A path prefix: `/segment[/segment…]`, URL-safe characters, no trailing slash.
pub(super) fn valid_prefix(prefix: &str) -> bool {
    prefix.starts_with('/')
        && prefix.len() > 1
        && !prefix.ends_with('/')
        && !prefix.contains("//")
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no
/// spaces or angle brackets (a display name is not accepted here).
pub(super) fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.contains(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == ',')
}

/// A phone number in E.164 form: `+` and 6 to 15 digits.
pub(super) fn is_e164_phone(value: &str) -> bool {
    value
        .strip_prefix('+')
        .is_some_and(|digits| (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a MongoDB database name is refused (the server's own rules: 1–63 bytes, none of
/// `/\. "$` and no NUL).
pub(super) fn database_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 63 {
        return Some("must be 1 to 63 bytes");
    }
    name.contains(['/', '\\', '.', ' ', '"', '$', '\0'])
        .then_some("must not contain / \\ . space \" $ or NUL")
}

/// Why a MongoDB collection name is refused (no `$`, no NUL, not `system.*`; short
/// enough to leave room for the `_messages` suffix and index names).
pub(super) fn collection_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 64 {
        return Some("must be 1 to 64 bytes");
    }
    if name.starts_with("system.") {
        return Some("must not start with \"system.\"");
    }
    name.contains(['$', '\0', ' ']).then_some("must not contain $ space or NUL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_https_unless_internal() {
        assert_eq!(endpoint_problem("https://api.openai.com/v1"), None);
        assert_eq!(endpoint_problem("http://127.0.0.1:11434/v1"), None);
        assert_eq!(endpoint_problem("http://ollama:11434"), None);
        assert_eq!(endpoint_problem("http://vllm.ml.svc.cluster.local/v1"), None);
        assert!(endpoint_problem("http://api.example.com/v1").is_some());
        assert!(endpoint_problem("api.example.com").is_some());
        assert!(endpoint_problem("ftp://api.example.com").is_some());
        // Numeric hosts as a browser reads them: 10.1 is 10.0.0.1, 1.2.3.4.5 is no host.
        assert_eq!(endpoint_problem("http://10.1:8000/v1"), None);
        assert_eq!(endpoint_problem("http://0x7f.1/v1"), None);
        assert_eq!(endpoint_problem("http://1.2.3.4.5/v1"), Some("has no valid host"));
        assert_eq!(endpoint_problem("https://256.1.1.1/v1"), Some("has no valid host"));
        assert!(endpoint_problem("http://134744072/v1").is_some(), "8.8.8.8 is public");
    }

    #[test]
    fn shapes() {
        assert!(is_email("ops@example.com") && !is_email("ops@localhost") && !is_email("Ops <ops@x.io>"));
        assert!(is_e164_phone("+15551234567") && !is_e164_phone("5551234567") && !is_e164_phone("+1 555"));
        assert_eq!(database_name_problem("chat"), None);
        assert!(database_name_problem("chat.db").is_some() && database_name_problem("").is_some());
        assert_eq!(collection_name_problem("sessions"), None);
        assert!(
            collection_name_problem("system.users").is_some() && collection_name_problem("a$b").is_some()
        );
        assert_eq!(link_problem("https://admin.example.com/chat"), None);
        assert!(link_problem("admin.example.com").is_some() && link_problem("https://").is_some());
    }
}
