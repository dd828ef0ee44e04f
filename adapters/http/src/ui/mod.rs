//! The web pages the service serves itself (`P/ui/…`): the chat page, the user's
//! conversations, the admin dashboard, and the static files they load, all embedded in the binary at build time (`assets`), so the pages
//! work offline and load nothing from another origin.
//!
//! Invariants:
//! - **Nothing inline.** A page's HTML holds no script and no style; everything comes
//!   from `P/ui/assets/…`, so the pages' Content-Security-Policy (set for every HTML
//!   reply by `edge::headers`) allows scripts and styles from `'self'` only.
//! - **No secret in a page.** The HTML is the same for everyone; the token reaches the
//!   page's script from the address bar (moved to `sessionStorage` at once) or from an
//!   embedding page, never from the server.
//! - **One place for the prefix.** The path prefix is written into each page once, in a
//!   `<meta name="chatbox-prefix">` the scripts read, HTML-escaped; likewise the origins
//!   allowed to embed the pages (from `CSP_FRAME_ANCESTORS`), the only ones a page takes
//!   a token from by `postMessage` (`<meta name="chatbox-embedders">`).

mod assets;

use http::{HeaderValue, StatusCode, header};

use crate::reply::HttpResponse;
use crate::routes::AssetRequest;

pub use assets::ASSETS;

/// `GET P/ui`: the chat page.
pub fn chat_page(request: &AssetRequest) -> HttpResponse {
    page(request, assets::CHAT_PAGE)
}

/// `GET P/ui/sessions`: the user's conversations.
pub fn sessions_page(request: &AssetRequest) -> HttpResponse {
    page(request, assets::SESSIONS_PAGE)
}

/// `GET P/ui/admin`: the admin dashboard (its data needs an admin token).
pub fn admin_page(request: &AssetRequest) -> HttpResponse {
    page(request, assets::ADMIN_PAGE)
}

/// `GET P/ui/assets/{name}`: an embedded file, revalidated by its `ETag`.
pub fn asset(request: &AssetRequest) -> HttpResponse {
    let Some(asset) = assets::find(request.path_param("name")) else {
        return not_found();
    };
    let etag = asset.etag();
    let fresh = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    let mut response = if fresh {
        let mut response = HttpResponse::new(Vec::new().into());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = HttpResponse::new(asset.body.into());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        response
    };
    let headers = response.headers_mut();
    // The same URL may serve other bytes after an upgrade: the browser asks each time,
    // and gets 304 while they are the same.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// A page: its template with the path prefix and the embedding origins written in.
fn page(request: &AssetRequest, template: &str) -> HttpResponse {
    let html = template
        .replace("%PREFIX%", &html_escaped(request.path_prefix()))
        .replace("%EMBEDDERS%", &html_escaped(request.embedders()));
    let mut response = HttpResponse::new(html.into());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

fn not_found() -> HttpResponse {
    crate::reply::error_response(chatbox_domain::ErrorCode::NotFound, "No such file", None)
}

/// `text` safe inside an HTML attribute value or text.
fn html_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(html_escaped(r#"/a"><script>'&"#), "/a&quot;&gt;&lt;script&gt;&#39;&amp;");
        assert_eq!(html_escaped("/chat"), "/chat");
    }

    /// Whether `html` has an attribute named `on…` (an inline event handler) in a tag.
    fn has_inline_handler(html: &str) -> bool {
        html.split('<').skip(1).filter_map(|tag| tag.split('>').next()).any(|tag| {
            tag.split_whitespace().skip(1).any(|attribute| {
                let name = attribute.split('=').next().unwrap_or_default();
                name.len() > 2 && name.starts_with("on") && name.bytes().all(|b| b.is_ascii_alphabetic())
            })
        })
    }

    #[test]
    fn no_page_holds_inline_script_or_style() {
        assert!(has_inline_handler(r#"<img src=x onerror="alert(1)">"#), "the check sees a handler");
        assert!(!has_inline_handler("<p>turn it on</p>"), "text is not an attribute");
        for page in assets::PAGES {
            let lower = page.to_ascii_lowercase();
            for script in lower.split("<script").skip(1) {
                let (tag, rest) = script.split_once('>').unwrap_or_default();
                assert!(tag.contains("src="), "an inline script: <script{tag}>");
                assert!(rest.starts_with("</script>"), "a script with a body: <script{tag}>{rest}");
            }
            assert!(!lower.contains("<style"), "an inline style block");
            assert!(!lower.contains(" style="), "an inline style attribute");
            assert!(!has_inline_handler(&lower), "an inline event handler");
        }
    }
}
