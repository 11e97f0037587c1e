//! Which RPCs run at background priority. The ones that issue credentials (a login, a refresh,
//! an exchange, a password change) are run on the [`LowPriorityRuntime`], whose
//! threads yield the cores to everything else; `Verify`, ext_authz `Check`, the keys and the
//! revocation feed, revocations, health and the admin reads stay on the main runtime. So a
//! refresh storm that saturates the machine slows the refreshes, not the reads (`priority.rs`).
//!
//! A call handed over still ends with its client, as one on the main runtime does: when the
//! deadline passes or the client cancels, the handed-over task is aborted at its next `.await`,
//! so an abandoned login creates no session (`deadlines.rs` in the API tests).
//!
//! [`LowPriorityRuntime`]: crate::priority::LowPriorityRuntime

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::task::JoinHandle;
use tower::{Layer, Service};
use tracing::{Instrument, Span};

use super::to_status;
use crate::{domain::AuthError, priority::LowPriority};

/// The RPCs that issue credentials or take a password, by HTTP/2 path.
pub(crate) const ISSUING_RPCS: &[&str] = &[
    "/auth.v1.AuthService/Register",
    "/auth.v1.AuthService/Login",
    "/auth.v1.AuthService/Refresh",
    "/auth.v1.AuthService/ChangePassword",
    "/auth.v1.AuthService/ExchangeToken",
    "/auth.v1.AuthService/IssueServiceToken",
    "/auth.v1.AuthService/RequestEmailVerification",
    "/auth.v1.AuthService/ConfirmEmail",
    "/auth.v1.AuthService/RequestPasswordReset",
    "/auth.v1.AuthService/ResetPassword",
    "/auth.v1.AdminService/CreateUser",
    "/auth.v1.AdminService/SetPassword",
    "/auth.v1.AdminService/ImportUsers",
];

#[derive(Clone, Debug)]
pub struct IssuingAtLowPriorityLayer {
    low_priority: LowPriority,
}

impl IssuingAtLowPriorityLayer {
    pub fn new(low_priority: LowPriority) -> Self {
        Self { low_priority }
    }
}

impl<S> Layer<S> for IssuingAtLowPriorityLayer {
    type Service = IssuingAtLowPriority<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IssuingAtLowPriority {
            inner,
            low_priority: self.low_priority.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct IssuingAtLowPriority<S> {
    inner: S,
    low_priority: LowPriority,
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for IssuingAtLowPriority<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResponseBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let issuing = ISSUING_RPCS.contains(&request.uri().path());
        let response = self.inner.call(request);
        if !issuing {
            return Box::pin(response);
        }
        let low_priority = self.low_priority.clone();
        Box::pin(async move {
            // Polled inside the outer layers' span, so the call's logs keep their trace.
            let mut call = AbortOnDrop(low_priority.spawn(response.instrument(Span::current())));
            match (&mut call.0).await {
                Ok(answer) => answer,
                // A panic in the handler (or a runtime shut down under it): a plain INTERNAL.
                Err(_) => Ok(to_status(AuthError::Internal(
                    "the call ended without an answer".into(),
                ))
                .into_http()),
            }
        })
    }
}

/// Aborts the handed-over task when the call's future is dropped (a deadline, a cancel); after
/// the task finished, aborting does nothing.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use prost::Message;
    use prost_types::FileDescriptorSet;
    use tower::ServiceExt;

    use super::*;
    use crate::priority::{BACKGROUND_NICE, LowPriorityRuntime, thread_nice};

    /// Answers with the nice value of the thread it ran on, as its body.
    async fn nice_of_the_handler(
        _request: http::Request<()>,
    ) -> Result<http::Response<String>, Infallible> {
        let nice = thread_nice(0).map_or("unknown".to_owned(), |nice| nice.to_string());
        Ok(http::Response::new(nice))
    }

    async fn handler_nice(path: &str, runtime: &LowPriorityRuntime) -> String {
        let service = IssuingAtLowPriorityLayer::new(runtime.spawner())
            .layer(tower::service_fn(nice_of_the_handler));
        let request = http::Request::builder().uri(path).body(()).unwrap();
        service.oneshot(request).await.unwrap().into_body()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_refresh_runs_at_background_priority_and_a_verify_does_not() {
        let runtime = LowPriorityRuntime::start().unwrap();
        let caller = thread_nice(0).unwrap();

        let refresh = handler_nice("/auth.v1.AuthService/Refresh", &runtime).await;
        let verify = handler_nice("/auth.v1.AuthService/Verify", &runtime).await;

        assert_eq!(refresh, BACKGROUND_NICE.max(caller).to_string());
        assert_eq!(verify, caller.to_string());
    }

    #[tokio::test]
    async fn a_handed_over_call_ends_when_its_caller_gives_up() {
        let runtime = LowPriorityRuntime::start().unwrap();
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = finished.clone();
        let slow_write = tower::service_fn(move |_request: http::Request<()>| {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, Infallible>(http::Response::new(String::new()))
            }
        });
        let service = IssuingAtLowPriorityLayer::new(runtime.spawner()).layer(slow_write);
        let request = http::Request::builder()
            .uri("/auth.v1.AuthService/Login")
            .body(())
            .unwrap();

        let call = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            service.oneshot(request),
        );
        assert!(call.await.is_err(), "the caller gave up first");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;

        assert!(!finished.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn every_issuing_path_names_an_rpc_of_the_contract() {
        let descriptors = FileDescriptorSet::decode(auth_api::v1::FILE_DESCRIPTOR_SET).unwrap();
        let paths: Vec<String> = descriptors
            .file
            .iter()
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service.method.iter().map(move |method| {
                        format!("/{}.{}/{}", file.package(), service.name(), method.name())
                    })
                })
            })
            .collect();
        for path in ISSUING_RPCS {
            assert!(paths.iter().any(|known| known == path), "{path}");
        }
        assert!(!ISSUING_RPCS.iter().any(|path| path.ends_with("/Verify")));
    }
}
