//! The probes an orchestrator polls. `/healthz` (liveness): the process answers, so it need not
//! be restarted; it answers 200 whatever the database does. `/readyz` (readiness): 200 while
//! this replica can serve (the database answers and shutdown has not begun, `readiness.rs`),
//! 503 otherwise, so the replica leaves the load balancer without being killed. Both bodies are
//! small JSON for people; probes read the status code.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::HttpApi;

const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");
const JSON: (header::HeaderName, &str) = (header::CONTENT_TYPE, "application/json");

pub async fn live() -> Response {
    ([NO_STORE, JSON], r#"{"live":true}"#).into_response()
}

pub async fn ready(State(api): State<Arc<HttpApi>>) -> Response {
    let state = api.readiness.current();
    let up = |up: bool| if up { "up" } else { "down" };
    let body = serde_json::json!({
        "ready": state.ready(),
        "database": up(state.database_up),
        // Redis away is degraded, not unready.
        "redis": state.redis_up.map_or("not configured", up),
        "stopping": state.stopping,
    });
    let status = if state.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [NO_STORE, JSON], body.to_string()).into_response()
}
