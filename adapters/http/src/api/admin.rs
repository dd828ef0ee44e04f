//! The admin routes (role `admin` or `chat_admin`, limited per admin): the session
//! listing with every filter and sort and a `total`, one session in full, a user's
//! sessions, analytics over a time range, takeover and release.

use chatbox_domain::{ErrorCode, UserId};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::params::{self, BadParam};
use super::{Query, State, admin_caller, chat_error, json, session_id};
use crate::routes::{HttpResponse, error_response, json_response};

fn bad(problem: BadParam) -> HttpResponse {
    error_response(ErrorCode::BadRequest, problem.0, None)
}

async fn listing(state: &State, query: &Query, user: Option<UserId>) -> Result<HttpResponse, HttpResponse> {
    let query = params::admin_query(query, user).map_err(bad)?;
    let page = state.chat.list_sessions(&query).await.map_err(|e| chat_error(&e))?;
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
pub(crate) async fn sessions(state: State, headers: HeaderMap, query: Query) -> Result<HttpResponse, HttpResponse> {
    admin_caller(&state, &headers)?;
    listing(&state, &query, None).await
}

/// `GET P/admin/users/{user_id}/sessions`.
pub(crate) async fn user_sessions(
    state: State,
    headers: HeaderMap,
    user: String,
    query: Query,
) -> Result<HttpResponse, HttpResponse> {
    admin_caller(&state, &headers)?;
    let user = UserId::parse(&user).map_err(|_| error_response(ErrorCode::NotFound, "User not found", None))?;
    listing(&state, &query, Some(user)).await
}

/// `GET P/admin/sessions/{id}`.
pub(crate) async fn session(
    state: State,
    headers: HeaderMap,
    id: String,
    query: Query,
) -> Result<HttpResponse, HttpResponse> {
    let admin = admin_caller(&state, &headers)?;
    let id = session_id(&id)?;
    let (after, limit) = params::message_page(&query).map_err(bad)?;
    let page =
        state.chat.read_session(&admin.id, true, true, &id, after, limit).await.map_err(|e| chat_error(&e))?;
    Ok(json_response(StatusCode::OK, &json::conversation(&page, true)))
}

/// `GET P/admin/metrics`.
pub(crate) async fn metrics(state: State, headers: HeaderMap, query: Query) -> Result<HttpResponse, HttpResponse> {
    admin_caller(&state, &headers)?;
    let (from, to) = params::metrics_range(&query).map_err(bad)?;
    let stats = state.chat.session_stats(from, to).await.map_err(|e| chat_error(&e))?;
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
pub(crate) async fn take_over(state: State, headers: HeaderMap, id: String) -> Result<HttpResponse, HttpResponse> {
    let admin = admin_caller(&state, &headers)?;
    let id = session_id(&id)?;
    state.chat.take_over(&admin.id, &admin.name, &id).await.map_err(|e| chat_error(&e))?;
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
pub(crate) async fn release(state: State, headers: HeaderMap, id: String) -> Result<HttpResponse, HttpResponse> {
    let admin = admin_caller(&state, &headers)?;
    let id = session_id(&id)?;
    state.chat.release(&admin.id, &id).await.map_err(|e| chat_error(&e))?;
    Ok(json_response(StatusCode::OK, &json!({ "status": "released", "session_id": id.as_str() })))
}
