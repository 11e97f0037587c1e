//! The three services in this process, each on a free port of 127.0.0.1: the auth service (on a
//! temporary SQLite database, with the `order-service` client the operator creates:
//! `operator.rs`), payment-service and order-service. Used by `demo`, by loadtest's
//! `revocation-bench` (auth replicas only) and by the integration test; they are the same
//! `build` + `run_until` calls the binaries make.

use std::{net::SocketAddr, path::Path, time::Duration};

use auth_service::{app::Application, config::Settings};
use tokio::{sync::watch, task::JoinHandle};
use tonic::transport::Uri;

use auth_api::tls::ClientTls;

use crate::{
    config::{OrderSettings, PaymentSettings},
    operator::{Operator, ProvisionError, provision},
    order::OrderServer,
    payment::PaymentServer,
    pki::{IssuedFiles, Pki},
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
    #[error("cannot make the demo certificates: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("cannot write the demo certificates: {0}")]
    Certificates(std::io::Error),
    #[error("cannot set up the order-service client: {0}")]
    Provision(#[from] ProvisionError),
}

/// The URL clients use for a bound address.
pub fn url_of(addr: SocketAddr) -> Result<Uri, http::uri::InvalidUri> {
    format!("http://{addr}").parse()
}

/// `https://` when the service serves TLS, `http://` otherwise.
fn service_url(addr: SocketAddr, tls: bool) -> Result<Uri, http::uri::InvalidUri> {
    if tls {
        format!("https://{addr}").parse()
    } else {
        url_of(addr)
    }
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
    /// and Redis URL of the environment are ignored). No exchange without a service credential
    /// (`AUTH_EXCHANGE_AUDIENCES` is empty): order-service exchanges as its service client.
    pub fn sqlite_settings(data_dir: &Path) -> Settings {
        let mut settings = Settings::defaults();
        settings.listen_addr = ([127, 0, 0, 1], 0).into();
        settings.data_dir = data_dir.to_path_buf();
        settings.database_url = None;
        settings.redis_url = None;
        settings
    }

    pub async fn start(settings: Settings) -> Result<Self, StackError> {
        let tls = settings.tls_cert.is_some();
        let app = Application::build(settings).await?;
        let url = service_url(app.local_addr(), tls)?;
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
    /// With [`LocalStack::start_mtls`]: the CA and a client certificate to call the services.
    pub tls: Option<StackTls>,
    /// The admin and order-service credentials the stack was set up with.
    pub operator: Operator,
    auth: AuthReplica,
    stop: watch::Sender<bool>,
    services: Vec<(&'static str, JoinHandle<()>)>,
    _data_dir: tempfile::TempDir,
}

impl LocalStack {
    /// The three services over plaintext (h2c).
    pub async fn start() -> Result<Self, StackError> {
        Self::launch(false).await
    }

    /// The three services over mutual TLS: a throwaway CA signs one certificate per service
    /// (used to serve and to call the others) and one for the caller ([`StackTls::client`]);
    /// every listener refuses a client without a certificate from that CA.
    pub async fn start_mtls() -> Result<Self, StackError> {
        Self::launch(true).await
    }

    async fn launch(mtls: bool) -> Result<Self, StackError> {
        let data_dir = tempfile::tempdir().map_err(StackError::DataDir)?;
        let (files, tls) = if mtls {
            let (files, tls) = StackTls::create(data_dir.path())?;
            (Some(files), Some(tls))
        } else {
            (None, None)
        };
        let mut auth_settings = AuthReplica::sqlite_settings(data_dir.path());
        if let Some(files) = &files {
            auth_settings.tls_cert = Some(files.auth.cert.clone());
            auth_settings.tls_key = Some(files.auth.key.clone());
            auth_settings.tls_client_ca = Some(files.ca.clone());
        }
        let auth = AuthReplica::start(auth_settings.clone()).await?;
        let auth_url = auth.url.clone();
        let operator = provision(
            &auth_settings,
            &auth_url,
            tls.as_ref().map(|tls| &tls.client),
        )
        .await?;
        let (stop, _) = watch::channel(false);

        // Each service presents its own certificate to the services it calls.
        let tls_paths = |identity: Option<&IssuedFiles>| {
            let ca = files.as_ref().map(|files| files.ca.clone());
            (
                identity.map(|files| files.cert.clone()),
                identity.map(|files| files.key.clone()),
                ca,
            )
        };
        let (cert, key, ca) = tls_paths(files.as_ref().map(|files| &files.payment));
        let payment = PaymentServer::build(&PaymentSettings {
            listen_addr: ([127, 0, 0, 1], 0).into(),
            auth_url: auth_url.clone(),
            audience: crate::PAYMENT_AUDIENCE.into(),
            issuer: "auth".into(),
            required_actor: crate::ORDER_CLIENT_ID.into(),
            max_feed_outage: Duration::from_secs(30),
            tls_cert: cert.clone(),
            tls_key: key.clone(),
            tls_client_ca: ca.clone(),
            upstream_ca: ca,
            client_cert: cert,
            client_key: key,
        })
        .await?;
        let payment_url = service_url(payment.local_addr(), mtls)?;
        let (cert, key, ca) = tls_paths(files.as_ref().map(|files| &files.order));
        let order = OrderServer::build(&OrderSettings {
            listen_addr: ([127, 0, 0, 1], 0).into(),
            auth_url: auth_url.clone(),
            payment_url: payment_url.clone(),
            payment_audience: crate::PAYMENT_AUDIENCE.into(),
            client_id: operator.order_client_id.clone(),
            client_secret: Some(operator.order_client_secret.clone()),
            service_audience: crate::ORDER_AUDIENCE.into(),
            tls_cert: cert.clone(),
            tls_key: key.clone(),
            tls_client_ca: ca.clone(),
            upstream_ca: ca,
            client_cert: cert,
            client_key: key,
        })
        .await?;
        let order_url = service_url(order.local_addr(), mtls)?;

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
            tls,
            operator,
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

/// The throwaway PKI of a mutual-TLS [`LocalStack`].
pub struct StackTls {
    /// The CA every certificate of the stack comes from; it can sign more (other clients).
    pub pki: Pki,
    /// Trusts the CA and presents a client certificate it signed: what a caller of the stack
    /// (the walkthrough, a test) uses.
    pub client: ClientTls,
}

/// Where the stack's PEM files are.
struct StackFiles {
    ca: std::path::PathBuf,
    auth: IssuedFiles,
    payment: IssuedFiles,
    order: IssuedFiles,
}

impl StackTls {
    fn create(data_dir: &Path) -> Result<(StackFiles, Self), StackError> {
        let pki = Pki::new("demo CA")?;
        let dir = data_dir.join("tls");
        std::fs::create_dir_all(&dir).map_err(StackError::Certificates)?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, pki.ca_pem()).map_err(StackError::Certificates)?;
        let write = |name: &str| {
            pki.service(name)?
                .write(&dir, name)
                .map_err(StackError::Certificates)
        };
        let files = StackFiles {
            auth: write("auth-service")?,
            payment: write("payment-service")?,
            order: write("order-service")?,
            ca,
        };
        let caller = pki.client("demo-client")?;
        let client = ClientTls::new(pki.ca_pem()).with_identity(caller.cert_pem, caller.key_pem);
        Ok((files, Self { pki, client }))
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
