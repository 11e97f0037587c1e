//! Starts the real server on an ephemeral port, on a fresh database, and drives it through the
//! generated clients. Every capability test runs once on SQLite and once on PostgreSQL (when
//! `TEST_DATABASE_URL` is set; otherwise the PostgreSQL variant says it is skipped).

use std::{path::PathBuf, sync::Arc, time::Duration};

use auth_api::v1::{
    self as pb, auth_service_client::AuthServiceClient, key_service_client::KeyServiceClient,
    login_response::Credential,
};
use auth_service::{
    app::Application,
    config::{SecretString, Settings},
    domain::ports::{Store, StoreError},
    store,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;

mod binary;
pub mod http_client;
pub mod mail_sink;
mod private_servers;
mod proxy;
pub mod webhook_receiver;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub const PASSWORD: &str = "correct horse battery";

/// Where the server under test keeps its data.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The base URL from `TEST_DATABASE_URL`.
    Postgres(String),
    /// PostgreSQL as above, with the Redis at `TEST_REDIS_URL` (fan-out, shared limits, and so
    /// the session cache on): how several replicas run in production.
    PostgresRedis {
        database: String,
        redis: String,
    },
}

impl Backend {
    /// PostgreSQL if configured; `None` (after saying so) otherwise.
    pub fn postgres(test: &str) -> Option<Self> {
        test_server_url("TEST_DATABASE_URL", test).map(Backend::Postgres)
    }

    /// PostgreSQL with Redis if both are configured; `None` (after saying so) otherwise.
    pub fn postgres_with_redis(test: &str) -> Option<Self> {
        Some(Backend::PostgresRedis {
            database: test_server_url("TEST_DATABASE_URL", test)?,
            redis: test_server_url("TEST_REDIS_URL", test)?,
        })
    }
}

/// The URL of a test server from `variable`. Without it a developer's run skips the test (and
/// says so); under CI (`CI` set) a missing server fails the test, so a suite that did not run
/// cannot pass.
pub fn test_server_url(variable: &str, test: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: {variable} is not set, and CI is: the test cannot be skipped")
        }
        _ => {
            eprintln!("skipped {test}: {variable} is not set");
            None
        }
    }
}

/// Declares each listed `async fn name(backend: Backend) -> TestResult` as three tests,
/// `sqlite::name`, `postgres::name` and `postgres_redis::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> $crate::helpers::TestResult {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> $crate::helpers::TestResult {
                    match $crate::helpers::Backend::postgres(stringify!($name)) {
                        Some(backend) => super::$name(backend).await,
                        None => Ok(()),
                    }
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> $crate::helpers::TestResult {
                    match $crate::helpers::Backend::postgres_with_redis(stringify!($name)) {
                        Some(backend) => super::$name(backend).await,
                        None => Ok(()),
                    }
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// A database for one test: a temporary directory for SQLite, a fresh schema for PostgreSQL.
#[derive(Clone)]
pub struct TestDatabase {
    data_dir: PathBuf,
    database_url: Option<String>,
    /// The Redis every server on this database uses, if its backend has one.
    redis_url: Option<String>,
    _dir: Arc<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(
        backend: &Backend,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let dir = Arc::new(tempfile::tempdir()?);
        let (base, redis_url) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres(base) => (Some(base), None),
            Backend::PostgresRedis { database, redis } => (Some(database), Some(redis.clone())),
        };
        let database_url = match base {
            None => None,
            Some(base) => {
                let schema = format!(
                    "test_{}",
                    auth_service::domain::opaque_token::new_id()?
                        .to_lowercase()
                        .replace(['-', '_'], "x")
                );
                let admin = sqlx::PgPool::connect(base).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                let separator = if base.contains('?') { '&' } else { '?' };
                Some(format!("{base}{separator}options[search_path]={schema}"))
            }
        };
        Ok(Self {
            data_dir: dir.path().to_path_buf(),
            database_url,
            redis_url,
            _dir: dir,
        })
    }

    /// A fresh schema on the PostgreSQL at `base`, reached through `proxy` (started on
    /// `host_port(base)`), so a test can cut the database away from the server.
    pub async fn create_behind(
        base: &str,
        proxy: &CuttableProxy,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let through_proxy = base.replacen(&host_port(base), &proxy.addr.to_string(), 1);
        Self::create(&Backend::Postgres(through_proxy)).await
    }

    pub fn apply(&self, settings: &mut Settings) {
        settings.data_dir = self.data_dir.clone();
        settings.database_url = self.database_url.clone().map(SecretString::new);
        settings.redis_url = self.redis_url.clone().map(SecretString::new);
    }

    /// Direct access to the store, to check what the server wrote.
    pub async fn store(&self) -> Result<Arc<dyn Store>, StoreError> {
        store::connect(self.database_url.as_deref(), &self.data_dir).await
    }

    /// The `DATABASE_URL` / `AUTH_DATA_DIR` (and `REDIS_URL`) a child process needs to use this
    /// database as a server under test does.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("AUTH_DATA_DIR", self.data_dir.display().to_string())];
        if let Some(url) = &self.database_url {
            env.push(("DATABASE_URL", url.clone()));
        }
        if let Some(url) = &self.redis_url {
            env.push(("REDIS_URL", url.clone()));
            env.push(("AUTH_REDIS_CHANNEL_PREFIX", self.key_prefix()));
        }
        env
    }

    /// Redis keys and channels of the servers on this database: tests share one Redis, and
    /// one test's revocations and rate limits must not reach another's servers.
    fn key_prefix(&self) -> String {
        format!(
            "test:{}",
            self.data_dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
    }
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// Where the HTTP listener (key discovery, probes, `/metrics`) is, when the settings
    /// enable it.
    pub http_addr: Option<std::net::SocketAddr>,
    pub auth: AuthServiceClient<Channel>,
    pub keys: KeyServiceClient<Channel>,
    pub channel: Channel,
    pub database: TestDatabase,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Settings for tests: defaults, a free port, a fresh database.
pub fn test_settings(database: &TestDatabase) -> Settings {
    let mut settings = Settings::defaults();
    settings.listen_addr = ([127, 0, 0, 1], 0).into();
    settings.key_reload_interval = Duration::from_secs(1);
    database.apply(&mut settings);
    // Tests share one Redis and one client address: give each database its own rate-limit keys
    // and revocation channels.
    settings.limits_key_prefix = database.key_prefix();
    settings.redis_channel_prefix = database.key_prefix();
    settings
}

impl TestApp {
    pub async fn spawn(
        backend: &Backend,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(
        backend: &Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let database = TestDatabase::create(backend).await?;
        let mut settings = test_settings(&database);
        configure(&mut settings);
        Self::start(database, settings).await
    }

    /// Starts a server on an existing database (a restart, or a second replica).
    pub async fn start(
        database: TestDatabase,
        settings: Settings,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let app = Application::build(settings.clone()).await?;
        let addr = app.local_addr();
        let http_addr = app.http_addr();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = app
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .user_agent("api-tests/1.0")?
            .connect()
            .await?;
        Ok(Self {
            addr,
            http_addr,
            auth: AuthServiceClient::new(channel.clone()),
            keys: KeyServiceClient::new(channel.clone()),
            channel,
            database,
            settings,
            shutdown: Some(shutdown),
            server: Some(server),
        })
    }

    /// Stops the server and starts a new one on the same database and settings.
    pub async fn restart(mut self) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        self.stop().await;
        let (database, settings) = (self.database.clone(), self.settings.clone());
        Self::start(database, settings).await
    }

    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn register(&self, email: &str) -> Result<String, Status> {
        let response = self
            .auth
            .clone()
            .register(pb::RegisterRequest {
                email: email.into(),
                password: PASSWORD.into(),
            })
            .await?;
        Ok(response.into_inner().user_id)
    }

    pub async fn login(
        &self,
        email: &str,
        kind: pb::CredentialKind,
    ) -> Result<pb::LoginResponse, Status> {
        self.login_for(email, kind, false).await
    }

    async fn login_for(
        &self,
        email: &str,
        kind: pb::CredentialKind,
        management: bool,
    ) -> Result<pb::LoginResponse, Status> {
        let response = self
            .auth
            .clone()
            .login(pb::LoginRequest {
                email: email.into(),
                password: PASSWORD.into(),
                kind: kind.into(),
                management,
            })
            .await?;
        Ok(response.into_inner())
    }

    /// Logs `email` in for a management session of `kind`: its credentials may call the
    /// session-management, password and admin RPCs, and are refused by the apps.
    pub async fn login_management(
        &self,
        email: &str,
        kind: pb::CredentialKind,
    ) -> Result<pb::LoginResponse, Status> {
        self.login_for(email, kind, true).await
    }

    /// The session token of a new management session of `email`.
    pub async fn manager_token(&self, email: &str) -> Result<String, Status> {
        session_token(
            &self
                .login_management(email, pb::CredentialKind::Session)
                .await?,
        )
    }

    /// The live sessions of the user behind `bearer` (a management credential), newest first.
    pub async fn list_sessions(&self, bearer: &str) -> Result<Vec<pb::SessionInfo>, Status> {
        let request = with_bearer(bearer, pb::ListSessionsRequest::default())
            .map_err(|error| Status::internal(error.to_string()))?;
        let response = self.auth.clone().list_sessions(request).await?;
        Ok(response.into_inner().sessions)
    }

    /// Registers `email` and logs in for a token pair.
    pub async fn user_with_tokens(
        &self,
        email: &str,
    ) -> Result<(pb::LoginResponse, pb::TokenPair), Status> {
        self.register(email).await?;
        let login = self.login(email, pb::CredentialKind::Tokens).await?;
        let tokens = token_pair(&login)?;
        Ok((login, tokens))
    }

    pub async fn verify(&self, token: &str) -> Result<pb::VerifyResponse, Status> {
        Ok(self
            .auth
            .clone()
            .verify(pb::VerifyRequest {
                token: token.into(),
                audience: String::new(),
            })
            .await?
            .into_inner())
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<pb::TokenPair, Status> {
        let response = self
            .auth
            .clone()
            .refresh(pb::RefreshRequest {
                refresh_token: refresh_token.into(),
            })
            .await?;
        response
            .into_inner()
            .tokens
            .ok_or_else(|| Status::internal("no tokens in RefreshResponse"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn token_pair(login: &pb::LoginResponse) -> Result<pb::TokenPair, Status> {
    match &login.credential {
        Some(Credential::Tokens(tokens)) => Ok(tokens.clone()),
        _ => Err(Status::internal("login did not return a token pair")),
    }
}

pub fn session_token(login: &pb::LoginResponse) -> Result<String, Status> {
    match &login.credential {
        Some(Credential::Session(session)) => Ok(session.session_token.clone()),
        _ => Err(Status::internal("login did not return a session token")),
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn with_bearer<T>(
    token: &str,
    message: T,
) -> Result<Request<T>, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

/// Asserts a call failed with `code` and the `ErrorInfo` reason `reason` in domain `auth.v1`.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, reason: &str) {
    let status = match result {
        Ok(value) => panic!("expected {code:?}/{reason}, got Ok({value:?})"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let info = status.get_details_error_info();
    assert_eq!(
        info.as_ref()
            .map(|info| (info.reason.as_str(), info.domain.as_str())),
        Some((reason, "auth.v1")),
        "unexpected error info in {status:?}"
    );
}

/// A unique email per call, so tests sharing nothing still never collide.
pub fn unique_email(prefix: &str) -> String {
    let id = auth_service::domain::opaque_token::new_id()
        .unwrap_or_default()
        .to_lowercase();
    format!("{prefix}-{id}@example.com")
}

pub fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit i64")
}

/// PostgreSQL and Redis, for the tests of several replicas; `None` (after saying so) otherwise.
pub fn postgres_and_redis(test: &str) -> Option<(Backend, String)> {
    let backend = Backend::postgres(test)?;
    Some((backend, test_server_url("TEST_REDIS_URL", test)?))
}

pub use binary::start_listening;
pub use private_servers::{PrivatePostgres, PrivateRedis};
pub use proxy::CuttableProxy;

/// `host:port` of a `redis://host:port[/db]` or `postgres://user@host:port/db` URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A LocalVerifier for `audience`, connected to `app`.
pub async fn local_verifier(
    app: &TestApp,
    audience: &str,
    configure: impl FnOnce(&mut auth_api::LocalVerifierConfig),
) -> Result<auth_api::LocalVerifier, Box<dyn std::error::Error + Send + Sync>> {
    let mut config = auth_api::LocalVerifierConfig::new(audience);
    configure(&mut config);
    Ok(auth_api::LocalVerifier::connect(app.channel.clone(), config).await?)
}

/// Waits (feed event by feed event, up to `limit`) until `verifier` rejects `token`.
pub async fn wait_until_rejected(
    verifier: &auth_api::LocalVerifier,
    token: &str,
    limit: Duration,
) -> Result<auth_api::VerifyError, Box<dyn std::error::Error + Send + Sync>> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next_event = verifier.next_feed_event();
        if let Err(error) = verifier.verify_token(token).await {
            return Ok(error);
        }
        if tokio::time::timeout_at(deadline, next_event).await.is_err() {
            return Err(format!("token still accepted after {limit:?}").into());
        }
    }
}
