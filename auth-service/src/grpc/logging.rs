//! One log line per RPC (method, gRPC status code, latency) and, when metrics are on, the
//! request counters and latency histograms. It sees only the path and the response headers, so
//! it cannot log a request's secrets.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use tower::{Layer, Service};

use crate::metrics::Metrics;

#[derive(Clone, Default)]
pub struct RpcLogLayer {
    metrics: Option<Arc<Metrics>>,
}

impl RpcLogLayer {
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcLog {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcLog<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
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
        let method = request.uri().path().to_owned();
        #[allow(clippy::disallowed_methods)]
        let started = Instant::now();
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = response.await;
            let latency = started.elapsed();
            // Microsecond resolution: enough, and no float noise in the log line.
            let latency_ms = (latency.as_secs_f64() * 1_000_000.0).round() / 1000.0;
            match &result {
                Ok(response) => {
                    let code = auth_api::telemetry::response_code(response.headers());
                    tracing::info!(rpc = %method, code = ?code, latency_ms, "rpc");
                    if let Some(metrics) = &metrics {
                        metrics.record_rpc(&method, code, latency);
                    }
                }
                Err(error) => {
                    tracing::warn!(rpc = %method, %error, latency_ms, "rpc transport error")
                }
            }
            result
        })
    }
}
