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

impl_sql_store!(PostgresStore, sqlx::postgres::PgRow);
