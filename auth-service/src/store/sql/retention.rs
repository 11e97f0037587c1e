//! The pruning statements, for both backends (the port: `domain/ports/retention.rs`; the
//! pruner: `engine/pruner.rs`). Candidates are found by a read, which takes no write lock on
//! SQLite (WAL) and none on PostgreSQL; each delete is one short statement on a bounded set of
//! rows that re-checks its condition. Only the lease differs per backend (`lease_pruning` in
//! `sqlite.rs` and `postgres.rs`).

/// `s` ended before `$1`: revoked, past its absolute expiry, or idle past its timeout.
macro_rules! ended_before {
    () => {
        "(s.revoked_at < $1 OR s.expires_at < $1 OR s.last_seen_at + s.idle_timeout_ms < $1)"
    };
}

/// Change-log rows past `$1`, never the newest (it marks the end of the log).
macro_rules! old_changes {
    () => {
        "at < $1 AND seq < (SELECT MAX(seq) FROM session_changes)"
    };
}

/// Key rows that never sign nor verify again, older than every key that still may.
macro_rules! dropped_keys {
    () => {
        "private_key IS NULL AND drop_after IS NOT NULL AND drop_after < $1 \
         AND seq < (SELECT MIN(seq) FROM signing_keys WHERE private_key IS NOT NULL)"
    };
}

macro_rules! retention_statements {
    ($store:ty, $row:ty) => {
        use crate::domain::{
            ports::{PruneCounts, PruneLease, Retention},
            retention::Horizons,
        };

        /// `$first, $first+1, ...` for `count` values.
        fn placeholders(first: usize, count: usize) -> String {
            (first..first + count)
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }

        async fn count_of(
            pool: &sqlx::Pool<<$row as sqlx::Row>::Database>,
            sql: &'static str,
            horizon: Timestamp,
        ) -> Result<u64, StoreError> {
            let row = sqlx::query(sql).bind(horizon.millis()).fetch_one(pool).await?;
            let count: i64 = row.try_get(0)?;
            Ok(u64::try_from(count).unwrap_or(0))
        }

        #[async_trait]
        impl Retention for $store {
            async fn try_lease_pruning(&self) -> Result<Option<Box<dyn PruneLease>>, StoreError> {
                self.lease_pruning().await
            }

            async fn count_prunable(&self, horizons: &Horizons) -> Result<PruneCounts, StoreError> {
                let ended = horizons.sessions_ended_before;
                Ok(PruneCounts {
                    sessions: count_of(
                        &self.pool,
                        concat!("SELECT COUNT(*) FROM sessions s WHERE ", $crate::store::sql::ended_before!()),
                        ended,
                    )
                    .await?,
                    refresh_tokens: count_of(
                        &self.pool,
                        concat!(
                            "SELECT COUNT(*) FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE ",
                            $crate::store::sql::ended_before!()
                        ),
                        ended,
                    )
                    .await?,
                    session_changes: count_of(
                        &self.pool,
                        concat!("SELECT COUNT(*) FROM session_changes WHERE ", $crate::store::sql::old_changes!()),
                        horizons.changes_before,
                    )
                    .await?,
                    signing_keys: count_of(
                        &self.pool,
                        concat!("SELECT COUNT(*) FROM signing_keys WHERE ", $crate::store::sql::dropped_keys!()),
                        horizons.keys_dropped_before,
                    )
                    .await?,
                })
            }

            async fn ended_sessions(&self, horizons: &Horizons, limit: u32) -> Result<Vec<String>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT s.id FROM sessions s WHERE ",
                    $crate::store::sql::ended_before!(),
                    " LIMIT $2"
                ))
                .bind(horizons.sessions_ended_before.millis())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(|row| row.try_get("id")).collect::<Result<_, _>>()?)
            }

            async fn delete_refresh_tokens(
                &self,
                sessions: &[String],
                horizons: &Horizons,
                limit: u32,
            ) -> Result<u64, StoreError> {
                if sessions.is_empty() {
                    return Ok(0);
                }
                let sql = format!(
                    "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT r.token_hash FROM refresh_tokens r \
                     JOIN sessions s ON s.id = r.session_id WHERE r.session_id IN ({}) AND {} LIMIT $2)",
                    placeholders(3, sessions.len()),
                    $crate::store::sql::ended_before!(),
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(horizons.sessions_ended_before.millis())
                    .bind(i64::from(limit));
                for id in sessions {
                    query = query.bind(id);
                }
                Ok(query.execute(&self.pool).await?.rows_affected())
            }

            async fn delete_sessions(&self, sessions: &[String], horizons: &Horizons) -> Result<u64, StoreError> {
                if sessions.is_empty() {
                    return Ok(0);
                }
                let sql = format!(
                    "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s WHERE s.id IN ({}) AND {} \
                     AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id))",
                    placeholders(2, sessions.len()),
                    $crate::store::sql::ended_before!(),
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(horizons.sessions_ended_before.millis());
                for id in sessions {
                    query = query.bind(id);
                }
                Ok(query.execute(&self.pool).await?.rows_affected())
            }

            async fn delete_changes(&self, horizons: &Horizons, limit: u32) -> Result<u64, StoreError> {
                let deleted = sqlx::query(concat!(
                    "DELETE FROM session_changes WHERE seq IN (SELECT seq FROM session_changes WHERE ",
                    $crate::store::sql::old_changes!(),
                    " LIMIT $2)"
                ))
                .bind(horizons.changes_before.millis())
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await?;
                Ok(deleted.rows_affected())
            }

            async fn delete_signing_keys(&self, horizons: &Horizons, limit: u32) -> Result<u64, StoreError> {
                let deleted = sqlx::query(concat!(
                    "DELETE FROM signing_keys WHERE kid IN (SELECT kid FROM signing_keys WHERE ",
                    $crate::store::sql::dropped_keys!(),
                    " LIMIT $2)"
                ))
                .bind(horizons.keys_dropped_before.millis())
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await?;
                Ok(deleted.rows_affected())
            }
        }
    };
}

pub(crate) use {dropped_keys, ended_before, old_changes, retention_statements};
