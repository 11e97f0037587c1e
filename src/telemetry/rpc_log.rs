//! The per-RPC log line every server built on auth-api writes: the method, the gRPC status code
//! and the latency, as `rpc rpc=/auth.v1.AuthService/Login code=Ok latency_ms=1.234` (a warning
//! `rpc transport error` when the call produced no response). It sees only the path and the
//! response headers, so it cannot log a request's secrets.
//!
//! What a service adds goes through two hooks: an [`RpcObserver`] hears of every finished call
//! (the auth service's metrics), and a call span ([`RpcLogLayer::with_call_span`]) gives handlers
//! fields to fill in (the demo services' `user_id`, `order_id`), printed with the line.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tower::{Layer, Service};
use tracing::{Instrument, Span};

use super::response_code;

/// Hears of every call that produced a response, after its log line.
pub trait RpcObserver: Send + Sync + 'static {
    /// `method` is the gRPC path (`/auth.v1.AuthService/Login`).
    fn rpc_finished(&self, method: &str, code: tonic::Code, latency: Duration);
}

/// The tower layer; stack it inside `TraceContextLayer`, so the line belongs to the call's trace.
#[derive(Clone, Default)]
pub struct RpcLogLayer {
    observer: Option<Arc<dyn RpcObserver>>,
    call_span: Option<fn() -> Span>,
}

impl RpcLogLayer {
    /// Logs every call and tells `observer`, when there is one.
    pub fn new<O: RpcObserver>(observer: Option<Arc<O>>) -> Self {
        Self {
            observer: observer.map(|observer| observer as Arc<dyn RpcObserver>),
            call_span: None,
        }
    }

    /// Runs each call inside a span made by `call_span`: fields the handler records into the
    /// current span (declared `Empty` there) appear with the log line.
    pub fn with_call_span(mut self, call_span: fn() -> Span) -> Self {
        self.call_span = Some(call_span);
        self
    }
}

impl fmt::Debug for RpcLogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcLogLayer")
            .field("observer", &self.observer.is_some())
            .field("call_span", &self.call_span.is_some())
            .finish()
    }
}

impl<S> Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcLog {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service wrapped by [`RpcLogLayer`].
#[derive(Clone, Debug)]
pub struct RpcLog<S> {
    inner: S,
    layer: RpcLogLayer,
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for RpcLog<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let span = self.layer.call_span.map_or_else(Span::none, |make| make());
        let started = Instant::now();
        let response = span.in_scope(|| self.inner.call(request));
        let observer = self.layer.observer.clone();
        Box::pin(
            async move {
                let result = response.await;
                let latency = started.elapsed();
                // Microsecond resolution: enough, and no float noise in the log line.
                let latency_ms = (latency.as_secs_f64() * 1_000_000.0).round() / 1000.0;
                match &result {
                    Ok(response) => {
                        let code = response_code(response.headers());
                        tracing::info!(rpc = %method, code = ?code, latency_ms, "rpc");
                        if let Some(observer) = &observer {
                            observer.rpc_finished(&method, code, latency);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(rpc = %method, %error, latency_ms, "rpc transport error")
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
