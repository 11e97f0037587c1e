//! One log line per RPC: method, gRPC status code and latency. It sees only the path and the
//! response headers, so it cannot log a request's secrets.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tower::{Layer, Service};

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
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            match &result {
                Ok(response) => {
                    // Failed unary calls are "trailers-only": the status is in the headers. A
                    // successful call's status (0) follows in the trailers.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse::<i32>().ok())
                        .map_or(tonic::Code::Ok, tonic::Code::from);
                    tracing::info!(rpc = %method, code = ?code, latency_ms, "rpc");
                }
                Err(error) => {
                    tracing::warn!(rpc = %method, %error, latency_ms, "rpc transport error")
                }
            }
            result
        })
    }
}
