//! The HTTP API end to end: authentication and roles on every route, ownership (someone
//! else's session is a 404 like a missing one), listing, paging, sharing and revoking,
//! the admin listing's filters, sorts and totals, analytics, the three limiters with
//! their 429s, the client address behind trusted proxies, the security headers, the
//! active-session cap, and the OpenAPI document against the router.

use chatbox_http::access::AccessLevel;
use chatbox_http::routes::{ROUTES, Route};
use serde_json::{Value, json};

use crate::support::{Client, TestApp, admin_token, spawn_app, token};

/// Alice's conversation: `n` questions answered, on a fresh session.
async fn conversation(app: &TestApp, user: &str, questions: &[&str]) -> Client {
    let mut client = app.connect(user, "").await;
    for question in questions {
        client.ask(question).await;
    }
    client
}

/// The path of `route` under the test app's prefix, with `session` for `{session_id}`.
fn path(route: &Route, session: &str) -> String {
    route
        .full_template("/chat")
        .replace("{session_id}", session)
        .replace("{share_token}", "nope")
        .replace("{user_id}", "alice")
}

#[tokio::test]
async fn every_bearer_route_refuses_missing_and_bad_tokens() {
    let app = spawn_app(&[]).await;
    let client = conversation(&app, "alice", &["hi"]).await;
    let session = client.session_id();
    let forged = crate::support::token_with(
        &json!({"user_id": "alice", "roles": ["admin"], "exp": 4_000_000_000_u64}),
        "another-secret-Q9w8E7r6T5y4U3i2O1p0AsDfGh",
        jsonwebtoken::Algorithm::HS256,
    );
    let bearer = ROUTES.iter().filter(|route| route.access_level().needs_bearer_token());
    let mut checked = 0;
    for route in bearer {
        let method = route.method().as_str();
        let path = path(route, &session);
        let (status, _, body) = app.json(method, &path, None).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")), "{method} {path}");
        let (status, _, body) = app.json(method, &path, Some(&forged)).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_TOKEN")), "{method} {path}");
        checked += 1;
    }
    assert!(checked > 0, "the table has bearer routes");
    app.stop().await;
}

#[tokio::test]
async fn every_admin_route_of_the_table_answers_403_to_a_user_token() {
    let app = spawn_app(&[]).await;
    let client = conversation(&app, "alice", &["hi"]).await;
    let session = client.session_id();
    let mut checked = 0;
    // Declared Admin, or under /admin/ whatever it was declared as.
    let admin = ROUTES.iter().filter(|route| {
        route.access_level() == AccessLevel::Admin || route.template().starts_with("/admin/")
    });
    for route in admin {
        let method = route.method().as_str();
        let path = path(route, &session);
        let (status, _, body) = app.json(method, &path, Some(&token("alice"))).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{method} {path}");
        assert_eq!(body["error"], "Admin role required", "{method} {path}");
        checked += 1;
    }
    assert!(checked > 0, "the table has admin routes");
    app.stop().await;
}

#[tokio::test]
async fn someone_elses_session_answers_like_a_missing_one() {
    let app = spawn_app(&[]).await;
    let alice = conversation(&app, "alice", &["private"]).await;
    let session = alice.session_id();
    let bob = token("bob");
    for (method, suffix) in [("GET", ""), ("POST", "/end"), ("POST", "/share"), ("DELETE", "/share")] {
        let (theirs, _, theirs_body) =
            app.json(method, &format!("/chat/sessions/{session}{suffix}"), Some(&bob)).await;
        let (missing, _, missing_body) =
            app.json(method, &format!("/chat/sessions/no-such-session{suffix}"), Some(&bob)).await;
        assert_eq!(theirs, 404, "{method} {suffix}");
        assert_eq!(
            (theirs, &theirs_body),
            (missing, &missing_body),
            "{method} {suffix}: nothing tells them apart"
        );
    }
    let (status, _, body) = app.json("GET", "/chat/sessions", Some(&bob)).await;
    assert_eq!((status, body["count"].as_u64()), (200, Some(0)), "bob lists nothing of alice's: {body}");
    let (status, _, body) =
        app.json("GET", &format!("/chat/sessions/{session}"), Some(&token("alice"))).await;
    assert_eq!(
        (status, body["messages"].as_array().map(Vec::len)),
        (200, Some(2)),
        "alice still reads it: {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_lists_pages_shares_revokes_and_ends_their_sessions() {
    let app = spawn_app(&[]).await;
    let first = conversation(&app, "alice", &["one", "two", "three"]).await;
    let _second = conversation(&app, "alice", &["Latest question"]).await;
    let alice = token("alice");

    let (status, _, list) = app.json("GET", "/chat/sessions", Some(&alice)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["count"], 2);
    assert_eq!(list["user_id"], "alice");
    assert_eq!(list["truncated"], false);
    assert_eq!(list["sessions"][0]["name"], "Latest question", "most recently active first: {list}");
    assert_eq!(list["sessions"][1]["session_id"], first.session_id());
    assert_eq!(list["sessions"][1]["message_count"], 6);
    let (_, _, page) = app.json("GET", "/chat/sessions?limit=1", Some(&alice)).await;
    assert_eq!((page["count"].as_u64(), page["truncated"].as_bool()), (Some(1), Some(true)), "{page}");

    let session = first.session_id();
    let (_, _, head) = app.json("GET", &format!("/chat/sessions/{session}?limit=4"), Some(&alice)).await;
    let seqs: Vec<u64> =
        head["messages"].as_array().expect("messages").iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!((seqs, head["has_more"].as_bool()), (vec![1, 2, 3, 4], Some(true)), "{head}");
    let (_, _, tail) =
        app.json("GET", &format!("/chat/sessions/{session}?after_seq=4&limit=4"), Some(&alice)).await;
    let seqs: Vec<u64> =
        tail["messages"].as_array().expect("messages").iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!((seqs, tail["has_more"].as_bool()), (vec![5, 6], Some(false)), "{tail}");
    assert_eq!(head["messages"][0]["sender"], "user");
    assert_eq!(head["messages"][1]["sender"], "ai");
    let (status, _, bad) =
        app.json("GET", &format!("/chat/sessions/{session}?after_seq=x"), Some(&alice)).await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("BAD_REQUEST")));

    let (status, _, share) = app.json("POST", &format!("/chat/sessions/{session}/share"), Some(&alice)).await;
    assert_eq!(status, 200, "{share}");
    let share_token = share["share_token"].as_str().expect("token").to_owned();
    assert!(share["expires_at"].as_str().is_some_and(|t| t > "2026"), "{share}");
    let (status, _, shared) = app.json("GET", &format!("/chat/shared/{share_token}"), None).await;
    assert_eq!((status, shared["read_only"].as_bool()), (200, Some(true)), "{shared}");
    assert_eq!(shared["messages"].as_array().map(Vec::len), Some(6));
    let (_, _, again) = app.json("POST", &format!("/chat/sessions/{session}/share"), Some(&alice)).await;
    let (status, _, _) = app.json("GET", &format!("/chat/shared/{share_token}"), None).await;
    assert_eq!(status, 404, "a new link replaces the old one");
    let newer = again["share_token"].as_str().expect("token").to_owned();
    let (status, _, _) = app.json("DELETE", &format!("/chat/sessions/{session}/share"), Some(&alice)).await;
    assert_eq!(status, 204);
    let (status, _, gone) = app.json("GET", &format!("/chat/shared/{newer}"), None).await;
    assert_eq!((status, gone["code"].as_str()), (404, Some("NOT_FOUND")), "revoked at once");

    let (status, _, ended) = app.json("POST", &format!("/chat/sessions/{session}/end"), Some(&alice)).await;
    assert_eq!((status, ended["status"].as_str()), (200, Some("ended")));
    let (status, _, _) = app.json("POST", &format!("/chat/sessions/{session}/end"), Some(&alice)).await;
    assert_eq!(status, 200, "idempotent");
    let (_, _, list) = app.json("GET", "/chat/sessions", Some(&alice)).await;
    let ended_one =
        list["sessions"].as_array().expect("sessions").iter().find(|s| s["id"] == session).expect("listed");
    assert_eq!(ended_one["is_active"], false);
    assert!(ended_one["end_time"].is_string(), "{ended_one}");
    app.stop().await;
}

#[tokio::test]
async fn the_admin_listing_filters_sorts_and_counts() {
    let app = spawn_app(&[]).await;
    let _a1 = conversation(&app, "alice", &["a"]).await;
    let a2 = conversation(&app, "alice", &["b", "c", "d"]).await;
    let _b1 = conversation(&app, "bob", &["e", "f"]).await;
    let admin = admin_token("root");
    let (_, _, ended) =
        app.json("POST", &format!("/chat/sessions/{}/end", a2.session_id()), Some(&token("alice"))).await;
    assert_eq!(ended["status"], "ended");

    let list = |query: &'static str| {
        let admin = admin.clone();
        let app = &app;
        async move {
            let (status, _, body) =
                app.json("GET", &format!("/chat/admin/sessions{query}"), Some(&admin)).await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };
    let all = list("").await;
    assert_eq!((all["total"].as_u64(), all["count"].as_u64()), (Some(3), Some(3)), "{all}");
    let by_count = list("?sort_by=message_count&sort_order=asc").await;
    let counts: Vec<u64> = by_count["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["message_count"].as_u64())
        .collect();
    assert_eq!(counts, [2, 4, 6]);
    let alices = list("?user_id=alice").await;
    assert_eq!(alices["total"], 2);
    let active = list("?status=active").await;
    assert_eq!(active["total"], 2);
    let ended = list("?status=ended").await;
    assert_eq!(
        (ended["total"].as_u64(), ended["sessions"][0]["session_id"].as_str()),
        (Some(1), Some(a2.session_id().as_str()))
    );
    let paged = list("?limit=1&offset=1&sort_by=user_id").await;
    assert_eq!(
        (paged["total"].as_u64(), paged["count"].as_u64()),
        (Some(3), Some(1)),
        "the total ignores the page: {paged}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (_, _, in_range) = app
        .json(
            "GET",
            &format!("/chat/admin/sessions?start_time_from={today}&start_time_to={today}"),
            Some(&admin),
        )
        .await;
    assert_eq!(in_range["total"], 3, "{in_range}");
    let (_, _, before) = app.json("GET", "/chat/admin/sessions?start_time_to=2020-01-01", Some(&admin)).await;
    assert_eq!(before["total"], 0);
    let (_, _, none_helped) = app.json("GET", "/chat/admin/sessions?help_requested=true", Some(&admin)).await;
    assert_eq!(none_helped["total"], 0);
    for bad in [
        "?sort_by=name",
        "?status=open",
        "?limit=1001",
        "?start_time_from=yesterday",
        "?admin_assisted=maybe",
    ] {
        let (status, _, body) = app.json("GET", &format!("/chat/admin/sessions{bad}"), Some(&admin)).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{bad}");
    }
    let (_, _, bobs) = app.json("GET", "/chat/admin/users/bob/sessions", Some(&admin)).await;
    assert_eq!(bobs["total"], 1);
    let (status, _, full) =
        app.json("GET", &format!("/chat/admin/sessions/{}", a2.session_id()), Some(&admin)).await;
    assert_eq!(
        (status, full["user_id"].as_str(), full["messages"].as_array().map(Vec::len)),
        (200, Some("alice"), Some(6))
    );

    let (status, _, metrics) = app.json("GET", "/chat/admin/metrics", Some(&admin)).await;
    assert_eq!(status, 200, "{metrics}");
    assert_eq!((metrics["total_sessions"].as_u64(), metrics["active_sessions"].as_u64()), (Some(3), Some(2)));
    assert_eq!(metrics["total_messages"], 12);
    assert!(metrics["total_tokens"].as_u64().is_some_and(|t| t > 0), "{metrics}");
    assert_eq!(metrics["connected_sockets"], 3, "the three sockets are still open");
    let (status, _, bad) =
        app.json("GET", "/chat/admin/metrics?start_time=2026-02-01&end_time=2026-01-01", Some(&admin)).await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("BAD_REQUEST")));
    app.stop().await;
}

#[tokio::test]
async fn the_admin_limiter_answers_429_with_retry_after_in_whole_seconds() {
    let app = spawn_app(&[("ADMIN_RATE_LIMIT", "2"), ("ADMIN_RATE_WINDOW", "1m")]).await;
    let admin = admin_token("root");
    for _ in 0..2 {
        let (status, _, _) = app.json("GET", "/chat/admin/metrics", Some(&admin)).await;
        assert_eq!(status, 200);
    }
    let (status, head, body) = app.json("GET", "/chat/admin/sessions", Some(&admin)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limit_exceeded");
    let retry_ms = body["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(retry_ms > 29_000 && retry_ms <= 30_000, "{retry_ms}");
    assert!(head.contains("retry-after: 30\r\n"), "whole seconds, rounded up: {head}");
    let (status, _, _) = app.json("GET", "/chat/admin/metrics", Some(&admin_token("other"))).await;
    assert_eq!(status, 200, "another admin has their own budget");
    app.stop().await;
}

#[tokio::test]
async fn the_user_routes_are_limited_per_user() {
    let app = spawn_app(&[]).await;
    let alice = token("alice");
    let started = std::time::Instant::now();
    for n in 0..120 {
        let (status, _, _) = app.json("GET", "/chat/sessions", Some(&alice)).await;
        assert_eq!(status, 200, "request {n}");
    }
    // The budget refills one request per half second: on a slow machine the burst took
    // long enough to earn a few more, and no more than that.
    let mut extra = 0;
    let (head, body) = loop {
        let (status, head, body) = app.json("GET", "/chat/sessions", Some(&alice)).await;
        if status != 200 {
            assert_eq!((status, body["error"].as_str()), (429, Some("rate_limit_exceeded")));
            break (head, body);
        }
        extra += 1;
        let earned = started.elapsed().as_millis() / 500 + 1;
        assert!(extra <= earned, "{extra} requests past the burst, but only {earned} refilled");
    };
    assert!(head.contains("retry-after: 1\r\n"), "{head} {body}");
    let (status, _, _) = app.json("GET", "/chat/sessions", Some(&token("bob"))).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn public_routes_are_limited_per_address_and_probes_are_exempt() {
    // 127.0.0.1 is outside the allowed networks here, so it is limited.
    let app = spawn_app(&[("PUBLIC_RATE_LIMIT", "2"), ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8")]).await;
    assert_eq!(app.json("GET", "/chat/healthz", None).await.0, 200);
    assert_eq!(app.json("GET", "/chat/readyz", None).await.0, 200);
    let (status, head, body) = app.json("GET", "/chat/shared/abc", None).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limit_exceeded")), "{body}");
    assert!(head.contains("retry-after: 30\r\n"), "{head}");
    assert!(head.contains("content-security-policy:"), "security headers on a 429 too: {head}");
    app.stop().await;

    // By default loopback is an allowed network: probes never get 429.
    let app = spawn_app(&[("PUBLIC_RATE_LIMIT", "2")]).await;
    for _ in 0..20 {
        assert_eq!(app.json("GET", "/chat/healthz", None).await.0, 200);
    }
    app.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let limited = [("PUBLIC_RATE_LIMIT", "1"), ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8")];
    let trusted: Vec<(&str, &str)> =
        limited.iter().copied().chain([("TRUSTED_PROXIES", "127.0.0.0/8")]).collect();
    let app = spawn_app(&trusted).await;
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    assert_eq!(app.http_raw("GET", "/chat/healthz", &from("203.0.113.1")).await.0, 200);
    assert_eq!(app.http_raw("GET", "/chat/healthz", &from("203.0.113.2")).await.0, 200, "another client");
    assert_eq!(
        app.http_raw("GET", "/chat/healthz", &from("203.0.113.1")).await.0,
        429,
        "the same client again"
    );
    // A client cannot pick its address: a trusted proxy appends the real one last.
    assert_eq!(app.http_raw("GET", "/chat/healthz", &from("198.51.100.9, 203.0.113.1")).await.0, 429);
    app.stop().await;

    let app = spawn_app(&limited).await;
    assert_eq!(app.http_raw("GET", "/chat/healthz", &from("203.0.113.1")).await.0, 200);
    assert_eq!(
        app.http_raw("GET", "/chat/healthz", &from("203.0.113.2")).await.0,
        429,
        "without TRUSTED_PROXIES the header is ignored: one client"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app =
        spawn_app(&[("CSP_FRAME_ANCESTORS", "'self' https://app.example"), ("HSTS_MAX_AGE", "365d")]).await;
    for (method, path) in
        [("GET", "/chat/healthz"), ("GET", "/nowhere"), ("GET", "/chat/sessions"), ("PUT", "/chat/healthz")]
    {
        let (_, head, _) = app.http_raw(method, path, &[]).await;
        assert!(head.contains("x-content-type-options: nosniff"), "{path}: {head}");
        assert!(head.contains("referrer-policy: strict-origin-when-cross-origin"), "{path}");
        assert!(head.contains("frame-ancestors 'self' https://app.example;"), "{path}: {head}");
        assert!(
            head.contains("strict-transport-security: max-age=31536000; includesubdomains"),
            "{path}: {head}"
        );
        assert!(!head.contains("x-frame-options"), "embedding is governed by frame-ancestors: {head}");
    }
    app.stop().await;
    let app = spawn_app(&[]).await;
    let (_, head, _) = app.http_raw("GET", "/chat/healthz", &[]).await;
    assert!(
        head.contains("frame-ancestors 'self';") && !head.contains("strict-transport-security"),
        "{head}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_over_the_active_session_cap_loses_the_least_recently_active() {
    let app = spawn_app(&[("MAX_ACTIVE_SESSIONS_PER_USER", "2")]).await;
    let mut oldest = conversation(&app, "alice", &["first"]).await;
    let _middle = conversation(&app, "alice", &["second"]).await;
    let _newest = conversation(&app, "alice", &["third"]).await;
    let frames = oldest.frames_before_pong().await;
    assert!(
        frames.iter().any(|f| f["type"] == "connection_status" && f["metadata"]["state"] == "ended"),
        "the oldest session's socket is told: {frames:#?}"
    );
    let (_, _, list) = app.json("GET", "/chat/sessions", Some(&token("alice"))).await;
    let active: Vec<&str> = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|s| s["is_active"] == true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(active, ["third", "second"]);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_and_every_listed_route_exists() {
    let app = spawn_app(&[]).await;
    let (status, _, document) = app.json("GET", "/chat/openapi.json", None).await;
    assert_eq!((status, document["openapi"].as_str()), (200, Some("3.1.0")));
    let paths = document["paths"].as_object().expect("paths");
    // Served operations; the others of each path are documented as its 405s.
    let served = paths
        .values()
        .flat_map(|methods| methods.as_object().into_iter().flat_map(serde_json::Map::values))
        .filter(|operation| {
            operation["responses"].as_object().is_some_and(|r| !(r.len() == 1 && r.contains_key("405")))
        })
        .count();
    assert_eq!(served, ROUTES.len(), "one served operation per route of the table");
    let admin = admin_token("root");
    for route in ROUTES.iter().filter(|route| route.access_level() != AccessLevel::MetricsNetwork) {
        let (method, path) = (route.method().as_str(), path(route, "missing"));
        let documented =
            paths.get(&route.full_template("/chat")).and_then(|m| m.get(route.method().openapi_name()));
        assert!(documented.is_some(), "{method} {path} is documented");
        let auth = format!("Bearer {admin}");
        let (_, _, text) = app.http_raw(method, &path, &[("Authorization", &auth)]).await;
        // Pages answer HTML; everything else, and every refusal, JSON.
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_ne!(body["error"], "Not found", "{method} {path} is routed");
        assert_ne!(body["code"], "METHOD_NOT_ALLOWED", "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_share_link_stops_working_when_share_ttl_has_passed() {
    let app = spawn_app(&[("SHARE_TTL", "1s")]).await;
    let client = conversation(&app, "alice", &["hi"]).await;
    let session = client.session_id();
    let (status, _, share) =
        app.json("POST", &format!("/chat/sessions/{session}/share"), Some(&token("alice"))).await;
    assert_eq!(status, 200, "{share}");
    let shared_at = tokio::time::Instant::now();
    let link = format!("/chat/shared/{}", share["share_token"].as_str().expect("token"));
    assert_eq!(app.json("GET", &link, None).await.0, 200, "valid at first");
    // Time passing is the input here: poll (with a deadline) until the link expires.
    let deadline = shared_at + std::time::Duration::from_secs(5);
    while app.json("GET", &link, None).await.0 == 200 {
        assert!(tokio::time::Instant::now() < deadline, "the link still works after SHARE_TTL");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(shared_at.elapsed() >= std::time::Duration::from_millis(900), "not before SHARE_TTL");
    let (status, _, body) = app.json("GET", &link, None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    app.stop().await;
}

/// Every method the OpenAPI document says a path refuses is refused with 405
/// `METHOD_NOT_ALLOWED`, before any authentication.
#[tokio::test]
async fn every_documented_405_is_answered_405() {
    let app = spawn_app(&[]).await;
    let (status, _, document) = app.json("GET", "/chat/openapi.json", None).await;
    assert_eq!(status, 200);
    let mut checked = 0;
    for (path, methods) in document["paths"].as_object().expect("paths") {
        for (method, operation) in methods.as_object().expect("methods") {
            let responses = operation["responses"].as_object().expect("responses");
            if !(responses.len() == 1 && responses.contains_key("405")) {
                continue;
            }
            let concrete =
                path.replace("{session_id}", "s1").replace("{user_id}", "u1").replace("{share_token}", "t1");
            let (status, head, body) = app.http_raw(&method.to_uppercase(), &concrete, &[]).await;
            assert_eq!(status, 405, "{method} {concrete}: {head}{body}");
            assert!(body.contains("METHOD_NOT_ALLOWED"), "{method} {concrete}: {body}");
            checked += 1;
        }
    }
    assert!(checked >= 30, "every path refuses the methods it does not serve ({checked} checked)");
    app.stop().await;
}
