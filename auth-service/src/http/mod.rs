//! The optional HTTP listener (`AUTH_HTTP_ADDR`): what gateways, JWT libraries and orchestrators
//! expect to find at a URL rather than over gRPC. One small file per concern: `keys.rs` (the
//! JWKS and the discovery document), `probes.rs` (`/healthz`, `/readyz`), `metrics.rs`.
//!
//! Like `grpc/`, a transport: it reads the keys through the domain (`AuthCore::jwks_json`, as
//! `grpc/keys.rs` does), readiness from `readiness.rs`, and never the store. Plain HTTP/1.1 on
//! axum (the HTTP stack tonic already runs on); the content is public, so TLS, when wanted, is
//! a terminating proxy's job.

mod keys;
mod metrics;
mod probes;

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::get};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{domain::AuthCore, metrics::Metrics, readiness::Readiness};

/// What the handlers read.
pub struct HttpApi {
    core: Arc<AuthCore>,
    readiness: Readiness,
    metrics: Arc<Metrics>,
    /// `Cache-Control: max-age` of the JWKS (`Settings::jwks_max_age`).
    jwks_max_age: Duration,
    /// The base URL of this listener as clients reach it, when configured.
    public_url: Option<String>,
}

impl HttpApi {
    pub fn new(
        core: Arc<AuthCore>,
        readiness: Readiness,
        metrics: Arc<Metrics>,
        jwks_max_age: Duration,
        public_url: Option<String>,
    ) -> Self {
        Self {
            core,
            readiness,
            metrics,
            jwks_max_age,
            public_url,
        }
    }

    /// How long clients may cache the JWKS and the discovery document.
    fn cache_control(&self) -> String {
        format!("public, max-age={}", self.jwks_max_age.as_secs())
    }

    fn router(self) -> Router {
        Router::new()
            .route(keys::JWKS_PATH, get(keys::jwks))
            .route(
                "/.well-known/openid-configuration",
                get(keys::openid_configuration),
            )
            .route("/healthz", get(probes::live))
            .route("/readyz", get(probes::ready))
            .route("/metrics", get(metrics::scrape))
            .with_state(Arc::new(self))
    }

    /// Serves on `listener` until the task is aborted (after the gRPC server stopped: `/readyz`
    /// answers 503 throughout the drain).
    pub fn spawn(self, listener: TcpListener) -> JoinHandle<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "HTTP listening (key discovery, probes, metrics)");
        }
        let router = self.router();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "the HTTP listener failed");
            }
        })
    }
}
