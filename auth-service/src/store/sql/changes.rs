//! The change log (`session_changes`), for both backends: how a revoking write (or a role change)
//! logs what it changed inside its own transaction, and how replicas read the log back by `seq`.
//! See the migration `*_session_changes.sql` and `engine/changes.rs` for the reader.

/// The statements and decoder of the change log, for the row type `$row`. Expanded inside
/// `impl_sql_store!`, whose imports it uses.
macro_rules! change_log {
    ($row:ty) => {
        const SELECT_CHANGES: &str = "SELECT seq, kind, user_id, session_id, at FROM session_changes ";

        /// Logs one change, in the transaction that makes it: `kind` is `session` (with the
        /// session id), `user` or `roles`; `at` the instant it carries.
        async fn log_change<'e, E>(
            executor: E,
            kind: &str,
            user_id: &str,
            session_id: Option<&str>,
            at: Timestamp,
        ) -> Result<(), sqlx::Error>
        where
            E: sqlx::Executor<'e, Database = <$row as sqlx::Row>::Database>,
        {
            sqlx::query("INSERT INTO session_changes (kind, user_id, session_id, at) VALUES ($1, $2, $3, $4)")
                .bind(kind)
                .bind(user_id)
                .bind(session_id)
                .bind(at.millis())
                .execute(executor)
                .await?;
            Ok(())
        }

        /// A kind this version does not know (written by a newer one) is read as the most
        /// cautious change: the user's remembered sessions are forgotten.
        fn change_from_row(row: &$row) -> Result<LoggedChange, sqlx::Error> {
            let kind: String = row.try_get("kind")?;
            let user_id: String = row.try_get("user_id")?;
            let at = Timestamp::from_millis(row.try_get("at")?);
            let session_id: Option<String> = row.try_get("session_id")?;
            let event = match (kind.as_str(), session_id) {
                ("session", Some(session_id)) => FanoutEvent::Revoked(Revocation::Session {
                    session_id,
                    user_id,
                    revoked_at: at,
                }),
                ("user", _) => FanoutEvent::Revoked(Revocation::User {
                    user_id,
                    revoked_before: at,
                }),
                _ => FanoutEvent::RolesChanged { user_id },
            };
            Ok(LoggedChange { seq: row.try_get("seq")?, event })
        }

        async fn read_changes_after(
            pool: &sqlx::Pool<<$row as sqlx::Row>::Database>,
            after: i64,
            limit: u32,
        ) -> Result<Vec<LoggedChange>, StoreError> {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{SELECT_CHANGES}WHERE seq > $1 ORDER BY seq LIMIT $2"
            )))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(change_from_row).collect::<Result<_, _>>()?)
        }

        async fn read_changes_among(
            pool: &sqlx::Pool<<$row as sqlx::Row>::Database>,
            seqs: &[i64],
        ) -> Result<Vec<LoggedChange>, StoreError> {
            let mut changes = Vec::new();
            // A bounded number of parameters per statement (SQLite allows 32766, PostgreSQL 65535).
            for chunk in seqs.chunks(500) {
                let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
                let sql = format!("{SELECT_CHANGES}WHERE seq IN ({}) ORDER BY seq", placeholders.join(", "));
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for seq in chunk {
                    query = query.bind(*seq);
                }
                let rows = query.fetch_all(pool).await?;
                for row in &rows {
                    changes.push(change_from_row(row)?);
                }
            }
            changes.sort_by_key(|change: &LoggedChange| change.seq);
            Ok(changes)
        }

        async fn read_last_change_seq(
            pool: &sqlx::Pool<<$row as sqlx::Row>::Database>,
        ) -> Result<i64, StoreError> {
            let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS last FROM session_changes")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get("last")?)
        }
    };
}

pub(crate) use change_log;
