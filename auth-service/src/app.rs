//! Wires the service together: store, keys, password hasher, domain core, gRPC services, health
//! and reflection, and the optional HTTP listener. `Application::build` binds the listeners
//! (port 0 picks a free one, as the tests do) and `run_until` serves until the given shutdown
//! future completes.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use auth_api::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use auth_api::telemetry::{RpcLogLayer, TraceContextLayer};
use auth_api::v1::{
    admin_service_server::AdminServiceServer, auth_service_server::AuthServiceServer,
    key_service_server::KeyServiceServer,
};
use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};

use crate::{
    config::Settings,
    domain::{
        AuthCore, AuthError, Machinery, Timestamp,
        gateway::Gateway,
        ports::{RevocationNews, Store, StoreError},
    },
    engine::{
        decision_cache::DecisionCache,
        hashing::PasswordHasher,
        hub::{self, RevocationHub},
        key_seal::KeySealError,
        keys::KeyManager,
        keys_at_rest, pruner,
        service_secrets::spawn_secret_retirement,
        session_cache::LiveSessions,
    },
    grpc::IssuingAtLowPriorityLayer,
    grpc::{AdminApi, AuthApi, ExtAuthzApi, KeyApi, health::Health, limits::OversizedRequestLayer},
    http::HttpApi,
    metrics::{self, Metrics},
    priority::LowPriorityRuntime,
    readiness::Readiness,
    store::{self, redis_fanout, redis_tls},
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot initialise: {0}")]
    Domain(#[from] AuthError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("TLS settings: {0}")]
    Tls(#[from] auth_api::tls::TlsError),
    #[error("settings: {0}")]
    Settings(String),
    #[error("{0}")]
    KeysAtRest(#[from] KeySealError),
    #[error("{0}")]
    Redis(String),
    #[error("cannot start the threads that issue credentials: {0}")]
    Threads(std::io::Error),
}

/// The parts every entry point (server, CLI commands) shares.
pub struct Components {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyManager>,
    pub hasher: Arc<PasswordHasher>,
    pub core: Arc<AuthCore>,
    pub revocations: Arc<RevocationHub>,
    redis: Option<redis_fanout::RedisLink>,
}

impl Components {
    pub async fn open(settings: &Settings) -> Result<Self, StartError> {
        let settings = &settings.with_secret_files().map_err(StartError::Settings)?;
        settings.contradictions().map_err(StartError::Settings)?;
        let database_url = settings.database_url.as_ref().map(|url| url.expose());
        let store = store::connect(database_url, &settings.data_dir).await?;
        let key_file = settings.storage.key_encryption_key_file.as_deref();
        let seal = keys_at_rest::load(store.as_ref(), key_file).await?;
        let keys = Arc::new(KeyManager::start_sealed(store.clone(), Timestamp::now(), seal).await?);
        let hasher = Arc::new(PasswordHasher::new(settings.hashing()).await?);
        let mut hub = RevocationHub::new(store.clone(), settings.tokens_outlive_revocation_by())
            .with_keys(keys.clone());
        let sessions = Arc::new(if settings.session_cache_on() {
            // With Redis, trusted only once the fan-out subscription is up (store/redis_fanout.rs).
            let trusted = settings.redis_url.is_none();
            LiveSessions::new(LIVE_SESSIONS_KEPT, settings.session_cache_ttl, trusted)
        } else {
            LiveSessions::off()
        });
        hub = hub.with_live_sessions(sessions.clone());
        let redis = match &settings.redis_url {
            Some(url) => {
                let tls = settings.redis_tls().map_err(StartError::Settings)?;
                let link = redis_fanout::RedisLink::open(
                    url.expose(),
                    tls.as_ref(),
                    &settings.redis_channel_prefix,
                )
                .await
                .map_err(|error| StartError::Redis(redis_tls::start_failure(error)))?;
                hub = hub.with_fanout(link.fanout());
                Some(link)
            }
            None => None,
        };
        let revocations = Arc::new(hub);
        let machinery = Machinery {
            keys: keys.clone(),
            hasher: hasher.clone(),
            sessions,
            news: revocations.clone(),
        };
        let mut core = AuthCore::new(settings.policy(), store.clone(), machinery);
        // With Redis, brute-force counts are shared by every replica (store/redis_limiter.rs).
        if let Some(link) = &redis {
            core = core.with_limiter(Arc::new(link.limiter(&settings.limits_key_prefix)));
        }
        let accounts = settings.accounts.start().map_err(StartError::Settings)?;
        let core = Arc::new(core.with_accounts(accounts));
        Ok(Self {
            store,
            keys,
            hasher,
            core,
            revocations,
            redis,
        })
    }
}

/// Live sessions remembered per replica (about 250 bytes each).
const LIVE_SESSIONS_KEPT: usize = 100_000;

/// Streams a client may reset before the server accepted them, per connection.
const MAX_PENDING_RESET_STREAMS: usize = 20;

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    http_listener: Option<TcpListener>,
    components: Components,
    settings: Settings,
    /// Read from the PEM files in `build`, so a bad path fails the start.
    tls: Option<auth_api::tls::ServerTls>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let settings = settings.with_secret_files().map_err(StartError::Settings)?;
        let tls = settings.server_tls()?;
        let components = Components::open(&settings).await?;
        settings.log_at_start();
        let addr = settings.listen_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let http_addr = settings.http.listen_addr().map_err(StartError::Settings)?;
        let http_listener = match http_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            http_listener,
            components,
            settings,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the HTTP listener (key discovery, probes, metrics) is, when `AUTH_HTTP_ADDR` (or
    /// its old name `AUTH_METRICS_ADDR`) is set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Components {
            store,
            keys,
            hasher,
            core,
            revocations,
            redis,
        } = self.components;
        let settings = self.settings;
        let low_priority = LowPriorityRuntime::start().map_err(StartError::Threads)?;
        let mut background = vec![tokio::spawn(maintain_keys(
            keys.clone(),
            revocations.clone(),
            settings.clone(),
        ))];

        let readiness = Readiness::new(redis.is_some());
        background.push(readiness.spawn_probe(
            store.clone(),
            redis.clone(),
            settings.health_check_interval,
        ));
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        let health = Health::new(health_reporter);
        background.push(health.clone().follow(&readiness).await);
        // Where the change log ends now: read before anything can be missed (a fan-out message,
        // a feed's snapshot). Then every replica re-reads it, with Redis or without.
        revocations.reread_changes(Timestamp::now()).await?;
        if let Some(link) = redis {
            background.push(link.spawn_listener(revocations.clone()));
        }
        background.push(hub::spawn_reconciler(
            revocations.clone(),
            settings.revocation_poll_interval,
        ));
        let prune_interval = settings.storage.prune_interval;
        background.extend(pruner::spawn(
            store.clone(),
            settings.prune_rules(),
            prune_interval,
        ));
        background.push(spawn_secret_retirement(
            core.clone(),
            settings.revocation_poll_interval,
        ));
        // ext_authz: the decision cache follows the revocation feed from here on.
        let (decision_cache, decision_sync) =
            DecisionCache::start(core.clone(), revocations.clone(), Timestamp::now()).await?;
        background.push(decision_sync);
        let gateway = Gateway::new(core.clone(), decision_cache, settings.gateway_policy());
        let metrics = match self.http_listener {
            Some(listener) => {
                let metrics = Arc::new(
                    Metrics::new(metrics::Sources {
                        store: store.clone(),
                        hasher,
                        keys,
                        revocations: revocations.clone(),
                        readiness: readiness.clone(),
                        audit: core.audit_trail(),
                    })
                    .map_err(|error| AuthError::Internal(format!("metrics: {error}")))?,
                );
                let public_url = settings.http.public_url().map_err(StartError::Settings)?;
                let http = HttpApi::new(
                    core.clone(),
                    readiness.clone(),
                    metrics.clone(),
                    settings.jwks_max_age(),
                    public_url,
                );
                background.push(http.spawn(listener));
                Some(metrics)
            }
            None => None,
        };
        let reflection_v1 = reflection_builder().build_v1().map_err(reflection_error)?;
        let reflection_v1alpha = reflection_builder()
            .build_v1alpha()
            .map_err(reflection_error)?;

        // On the shutdown signal: not ready (health NOT_SERVING, /readyz 503), end the revocation
        // feeds (they would otherwise keep the server open forever), and give in-flight calls a
        // grace period.
        let (stopping, stopping_receiver) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            readiness.stop();
            health.stop().await;
            let _ = stopping.send(true);
        };
        let mut stopped = stopping_receiver.clone();
        let grace = settings.shutdown_grace;
        let drain_deadline = async move {
            let _ = stopped.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };

        tracing::info!(addr = %self.local_addr, "auth-service listening");
        let max_message = settings.max_request_bytes;
        let trusted_proxies = settings.trusted_proxies.clone();
        let mut server = Server::builder();
        if let Some(tls) = &self.tls {
            // With a client CA, the handshake refuses a client without a valid certificate.
            tracing::info!(
                mutual = tls.requires_client_certificate(),
                "TLS on the gRPC listener"
            );
            server = server.tls_config(tls.config())?;
        }
        let serve = server
            .timeout(settings.request_timeout)
            .max_concurrent_streams(settings.max_concurrent_streams)
            .http2_max_header_list_size(settings.max_metadata_bytes)
            // HTTP/2 rapid reset (CVE-2023-44487): a connection that cancels streams faster than
            // they are served gets GOAWAY/ENHANCE_YOUR_CALM (h2's default, pinned here).
            .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESET_STREAMS))
            .layer(TraceContextLayer)
            .layer(RpcLogLayer::new(metrics))
            .layer(OversizedRequestLayer)
            .layer(IssuingAtLowPriorityLayer::new(low_priority.spawner()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                AuthServiceServer::new(AuthApi::new(core.clone(), trusted_proxies.clone()))
                    .max_decoding_message_size(max_message),
            )
            .add_service(
                AuthorizationServer::new(ExtAuthzApi::new(
                    Arc::new(gateway),
                    trusted_proxies.clone(),
                ))
                .max_decoding_message_size(max_message),
            )
            .add_service(
                AdminServiceServer::new(AdminApi::new(
                    core.clone(),
                    settings.key_activation_delay,
                    trusted_proxies,
                ))
                .max_decoding_message_size(max_message),
            )
            .add_service(
                KeyServiceServer::new(KeyApi::new(
                    core,
                    revocations,
                    settings.feed_heartbeat_interval,
                    stopping_receiver,
                    settings.feed_stream_caps(),
                ))
                .max_decoding_message_size(max_message),
            )
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                signal,
            );
        let result = tokio::select! {
            result = serve => result,
            () = drain_deadline => {
                tracing::warn!(?grace, "calls still in flight after the shutdown grace period; stopping anyway");
                Ok(())
            }
        };
        for task in background {
            task.abort();
        }
        tracing::info!("auth-service stopped");
        Ok(result?)
    }
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(auth_api::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc.ErrorInfo, so reflection clients can decode error details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        // envoy.service.auth.v3.Authorization (the ext_authz subset).
        .register_encoded_file_descriptor_set(auth_api::envoy::FILE_DESCRIPTOR_SET)
}

fn reflection_error(error: tonic_reflection::server::Error) -> StartError {
    StartError::Domain(AuthError::Internal(format!("reflection: {error}")))
}

/// Re-reads the key set (rotations by another process), announces a changed JWKS on the
/// revocation feed, and rotates when the period is up.
async fn maintain_keys(keys: Arc<KeyManager>, revocations: Arc<RevocationHub>, settings: Settings) {
    let mut ticker =
        tokio::time::interval(settings.key_reload_interval.max(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut published = keys.ring().await.jwks_json(Timestamp::now());
    loop {
        ticker.tick().await;
        if let Err(error) = keys.reload().await {
            tracing::warn!(%error, "reloading signing keys failed");
            continue;
        }
        let jwks = keys.ring().await.jwks_json(Timestamp::now());
        if jwks != published {
            revocations.keys_changed(jwks.clone());
            published = jwks;
        }
        if settings.key_rotation_period.is_zero() {
            continue;
        }
        let now = Timestamp::now();
        let last_activation = keys.ring().await.newest_activation();
        if last_activation.is_some_and(|at| now.since(at) >= settings.key_rotation_period) {
            match keys
                .rotate(
                    now,
                    settings.key_activation_delay,
                    settings.access_token_ttl + settings.token_leeway,
                )
                .await
            {
                Ok(kid) => tracing::info!(%kid, "signing key rotated on schedule"),
                Err(error) => tracing::warn!(%error, "scheduled key rotation failed"),
            }
        }
    }
}
