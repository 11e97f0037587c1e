//! The three services in this process, each on a free port of 127.0.0.1: the auth service (on a
//! temporary SQLite database), payment-service and order-service. Used by `demo`, by
//! `revocation-bench` (auth replicas only) and by the integration test; they are the same
//! `build` + `run_until` calls the binaries make.

use std::{net::SocketAddr, path::Path, time::Duration};

use auth_service::{app::Application, config::Settings};
use tokio::{sync::watch, task::JoinHandle};
use tonic::transport::Uri;

use crate::{
    config::{OrderSettings, PaymentSettings},
    order::OrderServer,
    payment::PaymentServer,
    server::StartError,
};

/// How long [`LocalStack::stop`] waits for the servers to drain before it stops waiting.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot create a temporary data directory: {0}")]
    DataDir(std::io::Error),
    #[error("auth-service did not start: {0}")]
    Auth(#[from] auth_service::app::StartError),
    #[error("a demo service did not start: {0}")]
    Service(#[from] StartError),
    #[error("bad service address: {0}")]
    Url(#[from] http::uri::InvalidUri),
}

/// The URL clients use for a bound address.
pub fn url_of(addr: SocketAddr) -> Result<Uri, http::uri::InvalidUri> {
    format!("http://{addr}").parse()
}

/// A stop signal shared by servers: completes when `true` is sent or the sender is dropped.
fn stop_signal(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut receiver = stop.subscribe();
    async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

/// One auth-service replica running in this process.
pub struct AuthReplica {
    pub url: Uri,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AuthReplica {
    /// Default settings on a free port of 127.0.0.1, with SQLite in `data_dir` (the database URL
    /// and Redis URL of the environment are ignored).
    pub fn sqlite_settings(data_dir: &Path) -> Settings {
        let mut settings = Settings::defaults();
        settings.listen_addr = ([127, 0, 0, 1], 0).into();
        settings.data_dir = data_dir.to_path_buf();
        settings.database_url = None;
        settings.redis_url = None;
        settings
    }

    pub async fn start(settings: Settings) -> Result<Self, StackError> {
        let app = Application::build(settings).await?;
        let url = url_of(app.local_addr())?;
        let (stop, _) = watch::channel(false);
        let shutdown = stop_signal(&stop);
        let task = tokio::spawn(async move {
            if let Err(error) = app.run_until(shutdown).await {
                tracing::error!(%error, "auth-service stopped with an error");
            }
        });
        Ok(Self { url, stop, task })
    }

    /// Signals the replica to stop and waits (a bounded time) for it to drain.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        drain(vec![("auth-service", self.task)]).await;
    }
}

/// auth-service, payment-service and order-service in this process.
pub struct LocalStack {
    pub auth_url: Uri,
    pub payment_url: Uri,
    pub order_url: Uri,
    auth: AuthReplica,
    stop: watch::Sender<bool>,
    services: Vec<(&'static str, JoinHandle<()>)>,
    _data_dir: tempfile::TempDir,
}

impl LocalStack {
    pub async fn start() -> Result<Self, StackError> {
        let data_dir = tempfile::tempdir().map_err(StackError::DataDir)?;
        let auth = AuthReplica::start(AuthReplica::sqlite_settings(data_dir.path())).await?;
        let auth_url = auth.url.clone();
        let (stop, _) = watch::channel(false);

        let payment = PaymentServer::build(&PaymentSettings {
            listen_addr: ([127, 0, 0, 1], 0).into(),
            auth_url: auth_url.clone(),
            audience: crate::PAYMENT_AUDIENCE.into(),
            issuer: "auth".into(),
            max_feed_outage: Duration::from_secs(30),
        })
        .await?;
        let payment_url = url_of(payment.local_addr())?;
        let order = OrderServer::build(&OrderSettings {
            listen_addr: ([127, 0, 0, 1], 0).into(),
            auth_url: auth_url.clone(),
            payment_url: payment_url.clone(),
            payment_audience: crate::PAYMENT_AUDIENCE.into(),
        })
        .await?;
        let order_url = url_of(order.local_addr())?;

        let payment_stopped = stop_signal(&stop);
        let order_stopped = stop_signal(&stop);
        let services = vec![
            (
                "payment-service",
                tokio::spawn(async move {
                    if let Err(error) = payment.run_until(payment_stopped).await {
                        tracing::error!(%error, "payment-service stopped with an error");
                    }
                }),
            ),
            (
                "order-service",
                tokio::spawn(async move {
                    if let Err(error) = order.run_until(order_stopped).await {
                        tracing::error!(%error, "order-service stopped with an error");
                    }
                }),
            ),
        ];
        Ok(Self {
            auth_url,
            payment_url,
            order_url,
            auth,
            stop,
            services,
            _data_dir: data_dir,
        })
    }

    /// Stops the demo services, then the auth service they depend on.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        drain(self.services).await;
        self.auth.stop().await;
    }
}

/// Waits for the servers to finish, at most [`DRAIN_TIMEOUT`]; the rest are aborted.
///
/// auth-service's graceful shutdown waits for every open `WatchRevocations` stream, and a
/// LocalVerifier's feed stays open after the verifier is dropped until the next feed message
/// (a heartbeat, every 5 s): so auth-service is usually the one aborted here.
async fn drain(servers: Vec<(&'static str, JoinHandle<()>)>) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    for (name, mut task) in servers {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!(
                server = name,
                "not stopped {DRAIN_TIMEOUT:?} after the shutdown signal (open streams); aborting it"
            );
            task.abort();
        }
    }
}
