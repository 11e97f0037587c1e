//! `grpc.health.v1` status that follows [`Readiness`]: SERVING while the database answers,
//! NOT_SERVING while it does not, and NOT_SERVING from the moment shutdown begins. Redis being
//! away is degraded, not down (`readiness.rs` says why): health stays SERVING.

use std::sync::Arc;

use auth_api::{
    envoy::service::auth::v3::authorization_server::AuthorizationServer,
    v1::{
        admin_service_server::AdminServiceServer, auth_service_server::AuthServiceServer,
        key_service_server::KeyServiceServer,
    },
};
use tokio::{sync::watch, task::JoinHandle};
use tonic::server::NamedService;
use tonic_health::{ServingStatus, server::HealthReporter};

use super::{AdminApi, AuthApi, ExtAuthzApi, KeyApi};
use crate::readiness::{Readiness, State};

/// Every service whose status follows the dependencies ("" is the server as a whole).
const SERVICES: [&str; 5] = [
    "",
    <AuthServiceServer<AuthApi> as NamedService>::NAME,
    <KeyServiceServer<KeyApi> as NamedService>::NAME,
    <AdminServiceServer<AdminApi> as NamedService>::NAME,
    <AuthorizationServer<ExtAuthzApi> as NamedService>::NAME,
];

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

    /// Reports SERVING or NOT_SERVING as `readiness` is now (before returning, so the server
    /// never answers "unknown service"), then as it changes.
    pub async fn follow(self, readiness: &Readiness) -> JoinHandle<()> {
        let mut changes = readiness.subscribe();
        self.report_readiness(&mut changes).await;
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                self.report_readiness(&mut changes).await;
            }
        })
    }

    async fn report_readiness(&self, changes: &mut watch::Receiver<State>) {
        let ready = changes.borrow_and_update().ready();
        self.set(if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        })
        .await;
    }
}
