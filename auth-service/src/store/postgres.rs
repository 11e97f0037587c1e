//! PostgreSQL, for production and for several replicas sharing one database.

use std::{sync::Arc, time::Duration};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::sql::{group_commit::GroupCommit, impl_sql_store};

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
            .connect_with(options)
            .await?;
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

impl_sql_store!(PostgresStore, sqlx::postgres::PgRow);
