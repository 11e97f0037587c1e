//! SQLite, the embedded default: one file in the data directory, WAL mode, and
//! `synchronous=FULL` so that an acknowledged revocation or rotation survives a crash or power
//! loss (NORMAL may lose the last commits).

use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{group_commit::GroupCommit, impl_sql_store};
use crate::priority;

/// Refresh rotations are group-committed (`sql/group_commit.rs`) by this many tasks at once.
/// SQLite has one writer: a second transaction would only wait for the lock, and fewer,
/// larger batches mean fewer fsyncs.
const ROTATION_COMMITTERS: usize = 1;

/// The name (and prefix) of sqlx's SQLite connection threads; at most 15 bytes with the id.
const SQLITE_THREAD_NAME: &str = "auth-sqlite-";

/// Prepared statements kept per connection (sqlx's default is 100).
const STATEMENT_CACHE: usize = 256;

/// How often the write-ahead log is copied back into the database (`checkpoint_wal`).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

pub struct SqliteStore {
    pool: SqlitePool,
    rotations: Arc<GroupCommit<SqlRotations>>,
    _checkpoints: Checkpoints,
}

/// The task that checkpoints the write-ahead log; it ends with the store.
struct Checkpoints(tokio::task::JoinHandle<()>);

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// By default SQLite checkpoints inside whichever commit crosses 1,000 log pages: that commit
/// also copies the log into the database and waits for its fsync, so now and then a whole
/// batch of rotations waited for both (the tail of Refresh). Here a task of its own checkpoints
/// instead (PASSIVE, as automatic checkpoints are: it neither waits for nor blocks readers and
/// the writer), and no commit ever does.
fn checkpoint_wal(pool: SqlitePool) -> Checkpoints {
    Checkpoints(tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!(%error, "a write-ahead log checkpoint failed; the next one retries");
            }
        }
    }))
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
            .busy_timeout(Duration::from_secs(10))
            // The rotation batch's text depends on its size (up to 64, `bulk_rotations.rs`):
            // room for each size beside the other statements, so none is prepared again.
            .statement_cache_capacity(STATEMENT_CACHE)
            // Commits never checkpoint: `checkpoint_wal` does.
            .pragma("wal_autocheckpoint", "0")
            .thread_name(|id| format!("{SQLITE_THREAD_NAME}{id}"));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // Each connection runs SQLite on a thread of its own, started by sqlx; most of a
            // refresh's CPU is spent there. At background priority it yields to `Verify`.
            .after_connect(|_, _| {
                Box::pin(async {
                    priority::lower_threads_named(SQLITE_THREAD_NAME);
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let rotations = GroupCommit::new(SqlRotations { pool: pool.clone() }, ROTATION_COMMITTERS);
        let _checkpoints = checkpoint_wal(pool.clone());
        Ok(Self {
            pool,
            rotations,
            _checkpoints,
        })
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

// A batch is three statements: it needs a transaction.
impl_sql_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    super::bulk_rotations::sqlite_together,
    false
);

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::priority::{BACKGROUND_NICE, thread_nice, threads_of_this_process};

    #[tokio::test]
    async fn sqlite_threads_run_at_background_priority() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_in(dir.path()).await.expect("store");
        let connections = store.pool.size() as usize;
        // Other tests' stores add threads of the same name, lowered or about to be; so this
        // counts: there are at least as many lowered ones as this store has connections.
        let lowered = threads_of_this_process()
            .into_iter()
            .filter(|(id, name)| {
                name.starts_with(SQLITE_THREAD_NAME) && thread_nice(*id) >= Some(BACKGROUND_NICE)
            })
            .count();
        assert!(connections >= 1);
        assert!(
            lowered >= connections,
            "{lowered} lowered, {connections} connections"
        );
    }
}
