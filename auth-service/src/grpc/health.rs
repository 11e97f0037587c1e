//! `grpc.health.v1` status that follows the dependencies: NOT_SERVING while the database (or
//! Redis, when configured) does not answer, SERVING again once it does, and NOT_SERVING from the
//! moment shutdown begins.
//!
//! The probe sees the database and Redis only as [`Dependency`]s: the transport knows that they
//! answer, not what they are (`app.rs` implements the trait for the store and for Redis).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use auth_api::{
    envoy::service::auth::v3::authorization_server::AuthorizationServer,
    v1::{
        admin_service_server::AdminServiceServer, auth_service_server::AuthServiceServer,
        key_service_server::KeyServiceServer,
    },
};
use tokio::task::JoinHandle;
use tonic::server::NamedService;
use tonic_health::{ServingStatus, server::HealthReporter};

use super::{AdminApi, AuthApi, ExtAuthzApi, KeyApi};
use crate::domain::ports::StoreError;

/// Every service whose status follows the dependencies ("" is the server as a whole).
const SERVICES: [&str; 5] = [
    "",
    <AuthServiceServer<AuthApi> as NamedService>::NAME,
    <KeyServiceServer<KeyApi> as NamedService>::NAME,
    <AdminServiceServer<AdminApi> as NamedService>::NAME,
    <AuthorizationServer<ExtAuthzApi> as NamedService>::NAME,
];

/// Something the service cannot serve without (the database, Redis), as the probe sees it.
#[async_trait]
pub trait Dependency: Send + Sync {
    /// Whether it answers a trivial request now; an error counts as down, and so does a reply
    /// slower than [`PROBE_TIMEOUT`].
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A probe slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    /// Set at shutdown; held while reporting so a probe cannot report SERVING after it.
    stopping: Arc<tokio::sync::Mutex<bool>>,
}

impl Health {
    pub fn new(reporter: HealthReporter) -> Self {
        Self {
            reporter,
            stopping: Arc::new(tokio::sync::Mutex::new(false)),
        }
    }

    /// NOT_SERVING from now on, whatever the probe finds.
    pub async fn stop(&self) {
        let mut stopping = self.stopping.lock().await;
        *stopping = true;
        self.report(ServingStatus::NotServing).await;
    }

    /// Reports `status` unless shutdown has begun.
    pub async fn set(&self, status: ServingStatus) {
        let stopping = self.stopping.lock().await;
        if !*stopping {
            self.report(status).await;
        }
    }

    async fn report(&self, status: ServingStatus) {
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
    }

    /// Probes the dependencies every `interval` and reports the result.
    pub fn spawn_probe(
        self,
        store: impl Dependency + 'static,
        redis: Option<impl Dependency + 'static>,
        interval: Duration,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = None;
            loop {
                ticker.tick().await;
                let database = tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await;
                let database_ok = matches!(database, Ok(Ok(())));
                let redis_ok = match &redis {
                    Some(redis) => matches!(
                        tokio::time::timeout(PROBE_TIMEOUT, redis.ping()).await,
                        Ok(Ok(()))
                    ),
                    None => true,
                };
                let status = if database_ok && redis_ok {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                if last != Some(status) {
                    if status == ServingStatus::NotServing {
                        tracing::warn!(
                            database_ok,
                            redis_ok,
                            "a dependency is unreachable: NOT_SERVING"
                        );
                    } else if last.is_some() {
                        tracing::info!("dependencies reachable again: SERVING");
                    }
                    self.set(status).await;
                    last = Some(status);
                }
            }
        })
    }
}
