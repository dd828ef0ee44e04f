//! Liveness (`GET P/healthz`) and readiness (`GET P/readyz`: storage answers within
//! two seconds, a model is configured, the server is not draining). Access level Public.
//! Each readiness verdict is also the `chatbox_ready` gauge, for alerting.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use super::{ApiRequest, ApiResult};
use crate::access::Visitor;
use crate::reply::json_response;

/// How long readiness waits for storage.
const READINESS_STORAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET P/healthz`.
pub(crate) async fn healthz(_: ApiRequest, _: Visitor) -> ApiResult {
    Ok(json_response(StatusCode::OK, &json!({ "status": "ok" })))
}

/// `GET P/readyz`.
pub(crate) async fn readyz(request: ApiRequest, _: Visitor) -> ApiResult {
    let state = &request.state;
    let draining = state.gate.is_draining();
    let storage = tokio::time::timeout(READINESS_STORAGE_TIMEOUT, state.chat.storage_ready()).await;
    let storage_ok = matches!(storage, Ok(Ok(())));
    let models = state.chat.settings().models.len();
    let ready = !draining && storage_ok && models > 0;
    state.metrics.recorder.readiness_checked(ready);
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "storage": { "status": if storage_ok { "ready" } else { "not ready" } },
            "llm": { "status": if models > 0 { "ready" } else { "not ready" }, "providers_count": models },
            "shutdown": { "status": if draining { "draining" } else { "running" } },
        }
    });
    Ok(json_response(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body))
}
