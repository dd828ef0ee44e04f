//! Liveness (`GET P/healthz`) and readiness (`GET P/readyz`: storage answers within
//! two seconds, so does the state the replicas share when there is one, a model is
//! configured, the server is not draining). Access level Public.
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
    let storage = tokio::time::timeout(READINESS_STORAGE_TIMEOUT, state.chat.storage_ready());
    let (storage, shared_state) = tokio::join!(storage, state.chat.shared_state_ready());
    let storage_ok = matches!(storage, Ok(Ok(())));
    let models = state.chat.settings().models.len();
    let ready = !draining && storage_ok && shared_state != Some(false) && models > 0;
    state.metrics.recorder.readiness_checked(ready);
    let verdict = |ok: bool| if ok { "ready" } else { "not ready" };
    let mut body = json!({
        "status": verdict(ready),
        "checks": {
            "storage": { "status": verdict(storage_ok) },
            "llm": { "status": verdict(models > 0), "providers_count": models },
            "shutdown": { "status": if draining { "draining" } else { "running" } },
        }
    });
    if let Some(reachable) = shared_state {
        body["checks"]["shared_state"] = json!({ "status": verdict(reachable) });
    }
    Ok(json_response(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body))
}
