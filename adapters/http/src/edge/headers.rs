//! Security headers on every response: `X-Content-Type-Options: nosniff`, a
//! `Referrer-Policy`, `Cache-Control: no-store` (responses carry conversations), a
//! `Content-Security-Policy` that lets nothing load and whose `frame-ancestors` comes
//! from configuration (clients embed the chat in web views and iframes, so the earlier
//! service's blanket `X-Frame-Options: DENY` was wrong), and HSTS when configured.
//!
//! An HTML reply (the service's own pages) gets the pages' policy instead: scripts,
//! styles, images and connections (the WebSocket included) from the service's own origin
//! only, nothing inline, nothing else, the same `frame-ancestors`.

use http::{HeaderMap, HeaderValue, header};

/// The headers added to every response.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    csp: HeaderValue,
    page_csp: HeaderValue,
    /// The origins named in `frame-ancestors`, space separated (`'self'` and patterns
    /// left out): the embedding pages a page may take a token from.
    embedders: String,
    hsts: Option<HeaderValue>,
}

/// The problem with a configured value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HeaderProblem(&'static str);

impl SecurityHeaders {
    /// Headers with `frame-ancestors` set to `frame_ancestors` (a CSP source list such as
    /// `'self' https://app.example`) and HSTS for `hsts_max_age_secs` seconds (0: none).
    ///
    /// # Errors
    /// When the source list cannot be a header value or would break out of its directive.
    pub fn new(frame_ancestors: &str, hsts_max_age_secs: u64) -> Result<Self, HeaderProblem> {
        if frame_ancestors.contains([';', ','])
            || frame_ancestors.chars().any(char::is_control)
            || frame_ancestors.trim().is_empty()
        {
            return Err(HeaderProblem("frame-ancestors must be a non-empty source list without ';' or ','"));
        }
        let ancestors = frame_ancestors.trim();
        let csp = HeaderValue::from_str(&format!(
            "default-src 'none'; frame-ancestors {ancestors}; base-uri 'none'; form-action 'none'"
        ))
        .map_err(|_| HeaderProblem("frame-ancestors must be visible ASCII"))?;
        let page_csp = HeaderValue::from_str(&format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
             connect-src 'self'; frame-ancestors {ancestors}; base-uri 'none'; form-action 'none'"
        ))
        .map_err(|_| HeaderProblem("frame-ancestors must be visible ASCII"))?;
        let hsts = (hsts_max_age_secs > 0).then(|| {
            HeaderValue::from_str(&format!("max-age={hsts_max_age_secs}; includeSubDomains"))
                .unwrap_or_else(|_| HeaderValue::from_static("max-age=31536000"))
        });
        let embedders = ancestors
            .split_whitespace()
            .filter(|source| {
                source.strip_prefix("https://").or_else(|| source.strip_prefix("http://")).is_some_and(
                    |host| !host.is_empty() && !host.contains(['*', '/', '\'', '"', '<', '>', '&']),
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Self { csp, page_csp, embedders, hsts })
    }

    /// The exact origins that may embed the pages (`https://app.example …`), space
    /// separated: a page takes a token by `postMessage` from these only.
    #[must_use]
    pub fn embedders(&self) -> &str {
        &self.embedders
    }

    /// Adds the headers (a route's own `Cache-Control` is kept).
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
        let page = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        let csp = if page { &self.page_csp } else { &self.csp };
        headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if let Some(hsts) = &self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_carries_the_configured_ancestors_and_hsts_only_when_set() {
        let mut headers = HeaderMap::new();
        SecurityHeaders::new("'self' https://app.example", 0).expect("valid").apply(&mut headers);
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(csp.contains("frame-ancestors 'self' https://app.example;"), "{csp}");
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

        let mut headers = HeaderMap::new();
        SecurityHeaders::new("*", 63_072_000).expect("valid").apply(&mut headers);
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], "max-age=63072000; includeSubDomains");
    }

    #[test]
    fn a_page_may_load_its_own_scripts_and_styles_and_nothing_inline() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        SecurityHeaders::new("'self'", 0).expect("valid").apply(&mut headers);
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        for directive in
            ["script-src 'self';", "style-src 'self';", "connect-src 'self';", "frame-ancestors 'self';"]
        {
            assert!(csp.contains(directive), "{directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        SecurityHeaders::new("'self'", 0).expect("valid").apply(&mut json);
        assert!(!json[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").contains("script-src"));
    }

    #[test]
    fn the_embedders_are_the_exact_origins_of_the_ancestors() {
        let headers = SecurityHeaders::new(
            "'self' https://app.example http://localhost:3000 https://*.example.org https://a.example/path",
            0,
        )
        .expect("valid");
        assert_eq!(headers.embedders(), "https://app.example http://localhost:3000");
        assert_eq!(SecurityHeaders::new("'self'", 0).expect("valid").embedders(), "");
    }

    #[test]
    fn a_source_list_cannot_inject_another_directive() {
        assert!(SecurityHeaders::new("'self'; script-src *", 0).is_err());
        assert!(SecurityHeaders::new("  ", 0).is_err());
        assert!(SecurityHeaders::new("https://a.example\n", 0).is_err());
    }
}
