//! The web pages through the real server: the chat page is served under the prefix with
//! the pages' Content-Security-Policy (scripts and styles from the service only, nothing
//! inline), holds no token, and every file it loads is embedded, served with its type
//! and an `ETag` that revalidates to 304; an unknown file is a 404 in the API's error
//! shape; and loading pages never spends the public rate limit.

use crate::support::{TestApp, spawn_app};

/// The `content` of `<meta name="chatbox-prefix">` and the asset paths a page loads.
fn asset_paths(html: &str) -> Vec<String> {
    html.split(['"', '\'']).filter(|part| part.contains("/ui/assets/")).map(str::to_owned).collect()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

async fn page(app: &TestApp, path: &str) -> (String, String) {
    let (status, head, body) = app.http_raw("GET", path, &[]).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(header(&head, "content-type"), Some("text/html; charset=utf-8"), "{head}");
    (head, body)
}

#[tokio::test]
async fn the_chat_page_and_its_files_are_served_under_a_strict_policy() {
    let app = spawn_app(&[]).await;
    let (head, html) = page(&app, "/chat/ui/").await;
    let (_, same) = page(&app, "/chat/ui").await;
    assert_eq!(html, same, "with or without the slash");
    let csp = header(&head, "content-security-policy").expect("a policy");
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(html.contains(r#"<meta name="chatbox-prefix" content="/chat">"#), "{html}");
    assert!(!html.contains("%PREFIX%"));

    let assets = asset_paths(&html);
    assert!(assets.len() >= 5, "icon, style, the two vendored scripts, the page's own: {assets:?}");
    for path in &assets {
        let (status, head, body) = app.http_raw("GET", path, &[]).await;
        assert_eq!(status, 200, "{path}");
        let kind = header(&head, "content-type").expect("a type");
        let expected = match path.rsplit('.').next() {
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            _ => "text/javascript",
        };
        assert!(kind.starts_with(expected), "{path}: {kind}");
        assert!(!body.is_empty(), "{path}");
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        let etag = header(&head, "etag").expect("an etag").to_owned();
        let (status, head, body) = app.http_raw("GET", path, &[("If-None-Match", &etag)]).await;
        assert_eq!((status, body.as_str()), (304, ""), "{path} revalidates: {head}");
        let (status, _, _) = app.http_raw("GET", path, &[("If-None-Match", "\"other\"")]).await;
        assert_eq!(status, 200, "another tag is not a match");
    }

    let (status, _, body) = app.http_raw("GET", "/chat/ui/assets/nothing.js", &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"NOT_FOUND\""), "{body}");
    let (status, _, _) = app.http_raw("GET", "/chat/ui/assets/..%2Fchat.html", &[]).await;
    assert_eq!(status, 404, "only embedded names");
}

#[tokio::test]
async fn loading_pages_spends_no_public_budget() {
    // No exempt network, and a budget of two requests a minute.
    let app = spawn_app(&[("PUBLIC_RATE_LIMIT", "2"), ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8")]).await;
    for _ in 0..5 {
        page(&app, "/chat/ui/").await;
        let (status, _, _) = app.http_raw("GET", "/chat/ui/assets/chat.js", &[]).await;
        assert_eq!(status, 200);
    }
    let statuses = [
        app.http("GET", "/chat/healthz", None).await.0,
        app.http("GET", "/chat/healthz", None).await.0,
        app.http("GET", "/chat/healthz", None).await.0,
    ];
    assert_eq!(statuses, [200, 200, 429], "the budget is still whole for the API");
}
