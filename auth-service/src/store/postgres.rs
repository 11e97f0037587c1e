//! PostgreSQL, for production and for several replicas sharing one database.
//!
//! TLS follows libpq's `sslmode` in `DATABASE_URL` (`disable`, `prefer` — the default —,
//! `require`, `verify-ca`, `verify-full`, with `sslrootcert`, `sslcert`, `sslkey`). A handshake
//! that fails stops the start with the reason (`tls_failure.rs`); a connection to a server
//! elsewhere than this host that is plaintext (`prefer` against a server without TLS) or
//! unverified (`prefer`, `require`) is logged as a warning.

use std::{net::IpAddr, sync::Arc, time::Duration};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

use super::{
    sql::{group_commit::GroupCommit, impl_sql_store},
    tls_failure::TlsFailure,
};

/// Refresh rotations are group-committed (`sql/group_commit.rs`) by this many tasks at once.
/// A few transactions in flight at once keep the server's own commit pipeline busy while a
/// batch's statements travel; each holds one of the pool's connections.
const ROTATION_COMMITTERS: usize = 4;

pub struct PostgresStore {
    pool: PgPool,
    rotations: Arc<GroupCommit<SqlRotations>>,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // A request waits this long for a connection before answering UNAVAILABLE.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(|error| connect_error(&options, error))?;
        report_tls(&pool, &options).await;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let rotations = GroupCommit::new(SqlRotations { pool: pool.clone() }, ROTATION_COMMITTERS);
        Ok(Self { pool, rotations })
    }
}

impl PostgresStore {
    /// A session-level advisory lock, per schema (several deployments or test runs may share a
    /// database), held on a connection of its own for as long as the pruning runs: if the
    /// process dies the connection closes and the lock is free again.
    async fn lease_pruning(
        &self,
    ) -> Result<Option<Box<dyn crate::domain::ports::PruneLease>>, StoreError> {
        use sqlx::Row as _;
        let mut connection = self.pool.acquire().await?;
        let row = sqlx::query(TRY_LOCK).fetch_one(&mut *connection).await?;
        if row.try_get::<bool, _>("held")? {
            Ok(Some(Box::new(AdvisoryLease(Some(connection)))))
        } else {
            Ok(None)
        }
    }
}

/// The pruning lock's key is this schema's, so that schemas sharing a database do not contend.
const TRY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtext(current_schema() || '.auth-service.prune')) AS held";
const UNLOCK: &str =
    "SELECT pg_advisory_unlock(hashtext(current_schema() || '.auth-service.prune'))";

struct AdvisoryLease(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

#[async_trait::async_trait]
impl crate::domain::ports::PruneLease for AdvisoryLease {
    async fn release(mut self: Box<Self>) {
        if let Some(mut connection) = self.0.take() {
            let unlocked = sqlx::query(UNLOCK).execute(&mut *connection).await;
            if unlocked.is_err() {
                // Closing the connection releases the lock too.
                drop(connection.detach());
            }
        }
    }
}

impl Drop for AdvisoryLease {
    fn drop(&mut self) {
        // Not released (a panic, an abort): never hand a connection that holds the lock back to
        // the pool; closing it frees the lock.
        if let Some(connection) = self.0.take() {
            drop(connection.detach());
        }
    }
}

/// libpq's name of an `sslmode`.
fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

fn connect_error(options: &PgConnectOptions, error: sqlx::Error) -> StoreError {
    let mode = mode_name(options.get_ssl_mode());
    if let Some(failure) = TlsFailure::find(&error) {
        let explained = failure.describe(
            options.get_host(),
            "sslrootcert in DATABASE_URL",
            "verify-full checks the host name, so connect by a name the certificate lists \
             (or use sslmode=verify-ca)",
        );
        return StoreError::Unavailable(format!("PostgreSQL TLS (sslmode={mode}): {explained}"));
    }
    match &error {
        sqlx::Error::Tls(reason) => {
            StoreError::Unavailable(format!("PostgreSQL TLS (sslmode={mode}): {reason}"))
        }
        _ => error.into(),
    }
}

/// Whether the server runs on this host (a Unix socket or a loopback address), where no network
/// sits between the service and its database.
fn is_local(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    options.get_socket().is_some()
        || host.starts_with('/')
        || host == "localhost"
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Logs whether the connection is encrypted, and warns when a remote one is plaintext or
/// unverified.
async fn report_tls(pool: &PgPool, options: &PgConnectOptions) {
    let mode = options.get_ssl_mode();
    let status: Result<(bool, Option<String>), _> =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(pool)
            .await;
    let Ok((encrypted, version)) = status else {
        return;
    };
    let sslmode = mode_name(mode);
    let version = version.unwrap_or_default();
    tracing::info!(tls = encrypted, %version, sslmode, "connected to PostgreSQL");
    if is_local(options) {
        return;
    }
    if !encrypted {
        tracing::warn!(
            sslmode,
            "the connection to PostgreSQL is not encrypted: set sslmode=verify-full (and \
             sslrootcert) in DATABASE_URL"
        );
    } else if !matches!(mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull) {
        tracing::warn!(
            sslmode,
            "the connection to PostgreSQL is encrypted but the server's certificate is not \
             checked: set sslmode=verify-full (and sslrootcert) in DATABASE_URL"
        );
    }
}

// A batch is one statement, atomic and durable on its own (its implicit transaction commits
// before the server reports ready, which is when sqlx hands back the rows): no BEGIN and COMMIT
// round trips around it.
impl_sql_store!(
    PostgresStore,
    sqlx::postgres::PgRow,
    super::bulk_rotations::postgres_together,
    true
);
