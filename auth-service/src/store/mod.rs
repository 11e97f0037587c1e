//! Where data rests: one small storage interface, implemented for SQLite (the embedded default)
//! and PostgreSQL. Both run the same SQL text (positional `$n` parameters work on both) and pass
//! the same test suite; each module owns only its connection setup and migrations.
//!
//! The interface they implement, and the records it speaks in, belong to the rules:
//! [`crate::domain::ports::Store`].

mod bulk_rotations;
mod postgres;
pub mod redis_fanout;
pub mod redis_limiter;
pub mod redis_tls;
mod sql;
mod sqlite;
mod tls_failure;

use std::{path::Path, sync::Arc};

use crate::domain::ports::{Store, StoreError};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            // Protocol: a connection cut between the TLS request and the server's answer (a
            // proxy in front of a database that is gone) reads as a malformed reply.
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Other(error.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Other(format!("migration failed: {error}"))
    }
}

/// Whether `DATABASE_URL` names PostgreSQL (anything else is SQLite or refused by [`connect`]).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the store named by `database_url` (`postgres://...`), or the SQLite database in
/// `data_dir` when there is none, and applies pending migrations.
pub async fn connect(
    database_url: Option<&str>,
    data_dir: &Path,
) -> Result<Arc<dyn Store>, StoreError> {
    match database_url {
        Some(url) if is_postgres_url(url) => Ok(Arc::new(PostgresStore::connect(url).await?)),
        Some(url) if url.starts_with("sqlite:") => {
            Ok(Arc::new(SqliteStore::connect_url(url).await?))
        }
        Some(_) => Err(StoreError::Other(
            "DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into(),
        )),
        None => Ok(Arc::new(SqliteStore::open_in(data_dir).await?)),
    }
}

// What the readiness probe pings (`readiness.rs`): the database and, when configured, Redis.
#[async_trait::async_trait]
impl crate::readiness::Dependency for Arc<dyn Store> {
    async fn ping(&self) -> Result<(), StoreError> {
        Store::ping(self.as_ref()).await
    }
}

#[async_trait::async_trait]
impl crate::readiness::Dependency for redis_fanout::RedisLink {
    async fn ping(&self) -> Result<(), StoreError> {
        redis_fanout::RedisLink::ping(self).await
    }
}
