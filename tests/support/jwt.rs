//! Tokens for the test binaries that start their own server with their own secret.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// An HS256 token for `user`, signed with `secret`, valid for an hour.
pub fn user_token(user: &str, secret: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs() + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"user_id": user, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A token of `user` with the role `admin`, valid for an hour, signed with `secret`.
pub fn admin_token(user: &str, secret: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs() + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"user_id": user, "name": format!("Ada {user}"), "roles": ["admin"], "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}
