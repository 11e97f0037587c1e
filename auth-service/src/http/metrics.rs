//! `GET /metrics`: the Prometheus text exposition of `crate::metrics::Metrics`.

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse};

use super::HttpApi;

pub async fn scrape(State(api): State<Arc<HttpApi>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.metrics.render().await,
    )
}
