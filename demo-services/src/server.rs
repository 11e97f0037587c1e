//! What both services share around their one authenticated gRPC service: binding (port 0 picks a
//! free port), health, reflection, the per-call log line, and serving until a shutdown future
//! completes.
//!
//! The log line is auth-api's (`RpcLogLayer`: method, status code, latency) with what the handler
//! [`record`]ed about the call: `user_id`, `order_id`, `payment_id`. It sits outside the
//! authentication layer, so calls refused there are logged too. Handlers record identifiers,
//! never credentials: a token cannot reach the log.

use std::{convert::Infallible, future::Future, net::SocketAddr};

use auth_api::{
    telemetry::RpcLogLayer,
    tls::{ClientTls, ServerTls},
};
use tokio::net::TcpListener;
use tonic::{
    Status,
    body::Body,
    server::NamedService,
    transport::{Endpoint, Server, Uri, server::TcpIncoming},
};
use tonic_health::ServingStatus;
use tower::Service;
use tracing::field::Empty;

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_SERVICE: &str = "grpc.reflection.v1.ServerReflection";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot reach the auth service at {url}: {status}")]
    AuthService { url: Uri, status: Status },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("TLS settings: {0}")]
    Tls(#[from] auth_api::tls::TlsError),
}

/// A bound listener and the address it got.
pub struct Bound {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<ServerTls>,
}

impl Bound {
    pub async fn bind(addr: SocketAddr) -> Result<Self, StartError> {
        let bind_error = |source| StartError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            tls: None,
        })
    }

    /// Serves over TLS (mutual TLS when `tls` has a client CA); `None` keeps plaintext.
    pub fn with_tls(mut self, tls: Option<ServerTls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `service` (plus health and reflection) until `shutdown` completes.
    pub async fn serve<S>(
        self,
        service: S,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError>
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_service_status(S::NAME, ServingStatus::Serving)
            .await;
        // demo.proto declares both services: list only the one this server has.
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(S::NAME)
            .with_service_name(HEALTH_SERVICE)
            .with_service_name(REFLECTION_SERVICE)
            .build_v1()?;
        tracing::info!(addr = %self.local_addr, service = S::NAME, tls = self.tls.is_some(), "listening");
        let mut server = Server::builder();
        if let Some(tls) = &self.tls {
            server = server.tls_config(tls.config())?;
        }
        server
            .layer(auth_api::telemetry::TraceContextLayer)
            .layer(RpcLogLayer::default().with_call_span(call_span))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(service)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await?;
        tracing::info!(service = S::NAME, "stopped");
        Ok(())
    }
}

/// The span each call runs in: the fields handlers may [`record`].
fn call_span() -> tracing::Span {
    tracing::info_span!(
        "call",
        user_id = Empty,
        order_id = Empty,
        payment_id = Empty
    )
}

/// Adds a field (`user_id`, `order_id`, `payment_id`) to the current call's log line (a no-op
/// outside a call).
pub fn record(field: &'static str, value: &str) {
    tracing::Span::current().record(field, value);
}

/// A channel that connects on first use, over TLS with `tls` for an `https://` URL.
pub fn channel(
    url: &Uri,
    tls: Option<&ClientTls>,
) -> Result<tonic::transport::Channel, StartError> {
    Ok(auth_api::tls::connect_lazy(url, tls)?)
}

/// A channel that connects on first use, so a service can start before its dependencies.
pub fn lazy_channel(url: &Uri) -> tonic::transport::Channel {
    Endpoint::from(url.clone()).tcp_nodelay(true).connect_lazy()
}

/// Completes on Ctrl-C or SIGTERM.
pub use auth_api::telemetry::shutdown_signal;
