//! One log line per call: method, gRPC status code, latency, and what the handler recorded about
//! it (`user_id`, `order_id`, `payment_id`). It sits outside the authentication layer, so calls
//! refused there are logged too. It sees only the path and the response headers, and handlers
//! record identifiers, never credentials: a token cannot reach the log.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tower::{Layer, Service};
use tracing::{Instrument, field::Empty};

#[derive(Clone, Copy, Debug, Default)]
pub struct RpcLogLayer;

impl<S> Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcLog { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RpcLog<S> {
    inner: S,
}

/// Adds a field to the current call's log line (a no-op outside a call).
pub fn record(field: &'static str, value: &str) {
    tracing::Span::current().record(field, value);
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for RpcLog<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let span = tracing::info_span!(
            "rpc",
            method = %request.uri().path(),
            user_id = Empty,
            order_id = Empty,
            payment_id = Empty,
        );
        let started = Instant::now();
        let response = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let result = response.await;
                let latency_ms = format!("{:.3}", started.elapsed().as_secs_f64() * 1000.0);
                match &result {
                    Ok(response) => {
                        let code = auth_api::telemetry::response_code(response.headers());
                        tracing::info!(code = ?code, latency_ms = %latency_ms, "call");
                    }
                    Err(error) => tracing::warn!(%error, latency_ms = %latency_ms, "call failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}
