//! The admin routes (access level Admin: role `admin` or `chat_admin`, limited per
//! admin; each handler takes the [`AdminCaller`] only that check makes): the session
//! listing with every filter and sort and a `total`, one session in full, a user's
//! sessions, analytics over a time range, takeover and release.

use chatbox_application::chat::Reader;
use chatbox_domain::UserId;
use http::StatusCode;
use serde_json::json;

use super::params;
use super::{ApiError, ApiRequest, ApiResult, Query, json, session_id};
use crate::access::AdminCaller;
use crate::reply::json_response;
use crate::state::HttpState;

async fn listing(state: &HttpState, query: &Query, user: Option<UserId>) -> ApiResult {
    let query = params::admin_query(query, user)?;
    let page = state.chat.list_sessions(&query).await?;
    let sessions: Vec<_> = page.sessions.iter().map(json::summary).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "sessions": sessions,
            "count": sessions.len(),
            "total": page.total.unwrap_or(0),
            "limit": query.limit,
            "offset": query.offset,
        }),
    ))
}

/// `GET P/admin/sessions`.
pub(crate) async fn sessions(request: ApiRequest, _: AdminCaller) -> ApiResult {
    let ApiRequest { state, query, .. } = request;
    listing(&state, &query, None).await
}

/// `GET P/admin/users/{user_id}/sessions`.
pub(crate) async fn user_sessions(request: ApiRequest, _: AdminCaller) -> ApiResult {
    let user =
        UserId::parse(request.path_param("user_id")).map_err(|_| ApiError::NotFound("User not found"))?;
    let ApiRequest { state, query, .. } = request;
    listing(&state, &query, Some(user)).await
}

/// `GET P/admin/sessions/{id}`.
pub(crate) async fn session(request: ApiRequest, _: AdminCaller) -> ApiResult {
    let id = session_id(request.path_param("session_id"))?;
    let ApiRequest { state, query, .. } = request;
    let (after, limit) = params::message_page(&query)?;
    let page = state.chat.read_session(Reader::Admin, &id, after, limit).await?;
    Ok(json_response(StatusCode::OK, &json::conversation(&page, true)))
}

/// `GET P/admin/metrics`.
pub(crate) async fn metrics(request: ApiRequest, _: AdminCaller) -> ApiResult {
    let ApiRequest { state, query, .. } = request;
    let (from, to) = params::metrics_range(&query)?;
    let stats = state.chat.session_stats(from, to).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "total_sessions": stats.total_sessions,
            "active_sessions": stats.active_sessions,
            "help_requested_sessions": stats.help_requested_sessions,
            "admin_assisted_sessions": stats.admin_assisted_sessions,
            "total_messages": stats.total_messages,
            "total_tokens": stats.total_tokens,
            "avg_response_time_ms": stats.avg_response_ms,
            "max_response_time_ms": stats.max_response_ms,
            "connected_sockets": state.gate.total(),
            "live_sessions": state.chat.live_sessions(),
            "time_range": {
                "start_time": from.map(json::time),
                "end_time": to.map(json::time),
            },
        }),
    ))
}

/// `POST P/admin/takeover/{id}`.
pub(crate) async fn take_over(request: ApiRequest, caller: AdminCaller) -> ApiResult {
    let admin = caller.admin();
    let id = session_id(request.path_param("session_id"))?;
    let state = request.state;
    state.chat.take_over(&admin.id, &admin.name, &id).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "status": "assisting",
            "session_id": id.as_str(),
            "admin_id": admin.id.as_str(),
            "admin_name": admin.name,
        }),
    ))
}

/// `POST P/admin/release/{id}`.
pub(crate) async fn release(request: ApiRequest, caller: AdminCaller) -> ApiResult {
    let admin = caller.admin();
    let id = session_id(request.path_param("session_id"))?;
    let state = request.state;
    state.chat.release(&admin.id, &id).await?;
    Ok(json_response(StatusCode::OK, &json!({ "status": "released", "session_id": id.as_str() })))
}
