//! A user's own sessions (`GET P/sessions`, `GET P/sessions/{id}`,
//! `POST P/sessions/{id}/end`, `POST|DELETE P/sessions/{id}/share`, access level User)
//! and the public read-only view a share link opens (`GET P/shared/{token}`, access level
//! Public). The owner routes also let the admin who assists a session read it, so the
//! earlier admin chat page (which loads history through them) keeps working.

use chatbox_application::chat::Reader;
use http::StatusCode;
use serde_json::json;

use super::params::{self, MAX_USER_LIMIT};
use super::{ApiError, ApiRequest, ApiResult, json, session_id};
use crate::access::{UserCaller, Visitor};
use crate::reply::{HttpResponse, json_response};

const SHARED_NOT_FOUND: &str = "Shared conversation not found";

/// `GET P/sessions`.
pub(crate) async fn list(request: ApiRequest, caller: UserCaller) -> ApiResult {
    let ApiRequest { state, query, .. } = request;
    let user = caller.user();
    let (limit, offset) = params::page(&query, 50, MAX_USER_LIMIT)?;
    let (page, truncated) = state.chat.own_sessions(&user.id, limit, offset).await?;
    let sessions: Vec<_> = page.sessions.iter().map(json::summary).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "sessions": sessions,
            "user_id": user.id.as_str(),
            "count": sessions.len(),
            "limit": limit,
            "offset": offset,
            "truncated": truncated,
        }),
    ))
}

/// `GET P/sessions/{id}`.
pub(crate) async fn read(request: ApiRequest, caller: UserCaller) -> ApiResult {
    let user = caller.user();
    let id = session_id(request.path_param("session_id"))?;
    let ApiRequest { state, query, .. } = request;
    let (after, limit) = params::message_page(&query)?;
    let page = state
        .chat
        .read_session(Reader::User { id: &user.id, admin: user.is_admin() }, &id, after, limit)
        .await?;
    Ok(json_response(StatusCode::OK, &json::conversation(&page, false)))
}

/// `POST P/sessions/{id}/end`.
pub(crate) async fn end(request: ApiRequest, caller: UserCaller) -> ApiResult {
    let user = caller.user();
    let id = session_id(request.path_param("session_id"))?;
    let state = request.state;
    state.chat.end_session(&user.id, &id).await?;
    Ok(json_response(StatusCode::OK, &json!({ "status": "ended", "session_id": id.as_str() })))
}

/// `POST P/sessions/{id}/share`.
pub(crate) async fn share(request: ApiRequest, caller: UserCaller) -> ApiResult {
    let user = caller.user();
    let id = session_id(request.path_param("session_id"))?;
    let state = request.state;
    let (token, expires_at) = state.chat.share(&user.id, &id).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "share_token": token, "expires_at": json::time(expires_at), "session_id": id.as_str() }),
    ))
}

/// `DELETE P/sessions/{id}/share`.
pub(crate) async fn revoke(request: ApiRequest, caller: UserCaller) -> ApiResult {
    let user = caller.user();
    let id = session_id(request.path_param("session_id"))?;
    let state = request.state;
    state.chat.revoke_share(&user.id, &id).await?;
    let mut response = HttpResponse::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// `GET P/shared/{token}`: no authentication.
pub(crate) async fn shared(request: ApiRequest, _: Visitor) -> ApiResult {
    let (after, limit) = params::message_page(&request.query)?;
    let token = request.path_param("share_token");
    // Tokens are alphanumeric; anything else cannot be one, and is not worth a lookup.
    if token.is_empty() || token.len() > 128 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound(SHARED_NOT_FOUND));
    }
    let page = request.state.chat.shared(token, after, limit).await.map_err(|error| match error {
        chatbox_application::ChatError::NotFound => ApiError::NotFound(SHARED_NOT_FOUND),
        other => ApiError::Chat(other),
    })?;
    let mut body = json::conversation(&page, false);
    if let Some(map) = body.as_object_mut() {
        map.insert("read_only".into(), json!(true));
    }
    Ok(json_response(StatusCode::OK, &body))
}
