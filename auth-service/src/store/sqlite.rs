//! SQLite, the embedded default: one file in the data directory, WAL mode, and
//! `synchronous=FULL` so that an acknowledged revocation or rotation survives a crash or power
//! loss (NORMAL may lose the last commits).

use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{group_commit::GroupCommit, impl_sql_store};

/// Refresh rotations are group-committed (`sql/group_commit.rs`) by this many tasks at once.
/// SQLite has one writer: a second transaction would only wait for the lock, and fewer,
/// larger batches mean fewer fsyncs.
const ROTATION_COMMITTERS: usize = 1;

pub struct SqliteStore {
    pool: SqlitePool,
    rotations: Arc<GroupCommit<SqlRotations>>,
}

impl SqliteStore {
    /// Opens (creating if needed) `auth.db` in `data_dir`.
    pub async fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::Other(format!(
                "cannot create data directory {}: {error}",
                data_dir.display()
            ))
        })?;
        Self::connect_with(SqliteConnectOptions::new().filename(data_dir.join("auth.db"))).await
    }

    pub async fn connect_url(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(SqliteConnectOptions::from_str(url)?).await
    }

    async fn connect_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Writers queue for the single write lock instead of failing at once.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let rotations = GroupCommit::new(SqlRotations { pool: pool.clone() }, ROTATION_COMMITTERS);
        Ok(Self { pool, rotations })
    }
}

impl SqliteStore {
    /// One process writes the embedded database; a second (say, `auth-service prune` beside the
    /// server) only repeats deletes that are idempotent. No lease is needed.
    async fn lease_pruning(
        &self,
    ) -> Result<Option<Box<dyn crate::domain::ports::PruneLease>>, StoreError> {
        Ok(Some(Box::new(NoLease)))
    }
}

struct NoLease;

#[async_trait::async_trait]
impl crate::domain::ports::PruneLease for NoLease {
    async fn release(self: Box<Self>) {}
}

impl_sql_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    super::bulk_rotations::sqlite_together
);
