//! A request whose message exceeds `AUTH_MAX_REQUEST_BYTES` is refused by tonic's decoder with
//! OUT_OF_RANGE and an internal-looking message. This layer turns that answer into
//! INVALID_ARGUMENT with the reason REQUEST_TOO_LARGE, like every other error of this service.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

/// The start of tonic's message for an over-limit request (`codec/decode.rs`).
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";
/// The reason of an oversized request's `INVALID_ARGUMENT`.
pub(crate) const REQUEST_TOO_LARGE: &str = "REQUEST_TOO_LARGE";

#[derive(Clone, Copy, Debug, Default)]
pub struct OversizedRequestLayer;

impl<S> Layer<S> for OversizedRequestLayer {
    type Service = OversizedRequest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OversizedRequest { inner }
    }
}

#[derive(Clone, Debug)]
pub struct OversizedRequest<S> {
    inner: S,
}

fn is_tonic_too_large(headers: &http::HeaderMap) -> bool {
    let status = headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok());
    let message = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    status == Some("11") && percent_decoded_starts_with(message, TONIC_TOO_LARGE)
}

/// `grpc-message` is percent-encoded; the prefix we look for contains only spaces and commas.
fn percent_decoded_starts_with(message: &str, prefix: &str) -> bool {
    message
        .replace("%20", " ")
        .replace("%2C", ",")
        .starts_with(prefix)
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for OversizedRequest<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
    ResponseBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if !is_tonic_too_large(response.headers()) {
                return Ok(response);
            }
            let status = Status::with_error_details(
                Code::InvalidArgument,
                "the request message is larger than this server accepts",
                ErrorDetails::with_error_info(
                    REQUEST_TOO_LARGE,
                    auth_api::ERROR_DOMAIN,
                    HashMap::new(),
                ),
            );
            Ok(status.into_http())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonics_size_refusal_is_rewritten() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static("11"));
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static(
                "Error,%20decoded%20message%20length%20too%20large:%20found%201048586%20bytes",
            ),
        );
        assert!(is_tonic_too_large(&headers));
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static("out of range"),
        );
        assert!(!is_tonic_too_large(&headers));
    }
}
