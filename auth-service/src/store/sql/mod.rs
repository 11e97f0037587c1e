//! The SQL both backends run, written once. SQLite and PostgreSQL accept the same statements
//! here (positional `$n` parameters, `RETURNING`-free updates, `LIMIT` in subqueries); the macro
//! stamps out the [`Store`](super::Store) implementation for each pool type so that each backend
//! keeps its own concrete, fully typed sqlx calls.
//!
//! This module holds the statements, one per `Store` method; `rows` holds what they read back
//! (column lists and row decoders).

mod account_admin;
mod accounts;
mod changes;
pub(crate) mod group_commit;
mod keys;
mod retention;
mod rotations;
mod rows;
mod services;

pub(crate) use retention::{dropped_keys, ended_before, old_changes, retention_statements};
pub(crate) use rotations::rotation_writer;
pub(crate) use rows::{decode_rows, select_sessions, select_users, session_columns};
pub(crate) use services::{select_service_clients, service_statements};
pub(crate) use {
    account_admin::admin_statements, accounts::account_statements, changes::change_log,
    keys::key_statements,
};

macro_rules! impl_sql_store {
    // `$together` writes several sessions' rotations in one go (`store/bulk_rotations.rs`);
    // `$together_is_atomic`: whether that is one statement, which needs no transaction around it.
    ($store:ty, $row:ty, $together:path, $together_is_atomic:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::domain::{
            Timestamp,
            model::{Revocation, SessionKind},
            ports::{
                FanoutEvent, ImportOutcome, Keyset, KeyRotation, KeyRotationOutcome, LapsedGeneration, LoggedChange, NewSession, OwnerStanding,
                PrivateKeyReplacement, RefreshRotation, RevokeReason, RevokedSession, ServiceClientRecord,
                ServiceRotation, SessionRecord, SigningKeyRecord, Store, StoreError, TOMBSTONE_KEY_PREFIX, UserFilter, UserRecord,
            },
        };

        $crate::store::sql::decode_rows!($row);
        $crate::store::sql::change_log!($row);
        $crate::store::sql::key_statements!($row);
        $crate::store::sql::rotation_writer!($row, $together, $together_is_atomic);
        $crate::store::sql::retention_statements!($store, $row);
        $crate::store::sql::service_statements!($row);
        $crate::store::sql::account_statements!($store, $row);
        $crate::store::sql::admin_statements!($row);

        #[async_trait]
        impl Store for $store {
            async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, email, email_key, password_hash, roles, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&user.id)
                .bind(&user.email)
                .bind(&user.email_key)
                .bind(&user.password_hash)
                .bind(&user.roles)
                .bind(user.created_at.millis())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_user_by_email_key(&self, email_key: &str) -> Result<Option<UserRecord>, StoreError> {
                let row = sqlx::query(concat!($crate::store::sql::select_users!(), "WHERE email_key = $1"))
                    .bind(email_key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(user_from_row).transpose()?)
            }

            async fn find_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
                let row = sqlx::query(concat!($crate::store::sql::select_users!(), "WHERE id = $1"))
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(user_from_row).transpose()?)
            }

            async fn update_password_hash(&self, user_id: &str, expected: &str, password_hash: &str) -> Result<bool, StoreError> {
                let result = sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                    .bind(user_id)
                    .bind(expected)
                    .bind(password_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn set_user_roles(&self, user_id: &str, roles: &str, now: Timestamp) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let result = sqlx::query("UPDATE users SET roles = $2 WHERE id = $1")
                    .bind(user_id)
                    .bind(roles)
                    .execute(&mut *tx)
                    .await?;
                if result.rows_affected() != 1 {
                    return Ok(false);
                }
                log_change(&mut *tx, "roles", user_id, None, now).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn suspend_user(&self, user_id: &str, now: Timestamp) -> Result<bool, StoreError> {
                let result = sqlx::query("UPDATE users SET suspended_at = COALESCE(suspended_at, $2) WHERE id = $1")
                    .bind(user_id)
                    .bind(now.millis())
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn reactivate_user(&self, user_id: &str) -> Result<bool, StoreError> {
                let result = sqlx::query("UPDATE users SET suspended_at = NULL WHERE id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn list_users(&self, filter: &UserFilter, after: Option<&Keyset>, limit: u32) -> Result<Vec<UserRecord>, StoreError> {
                list_users_page(&self.pool, filter, after, limit).await
            }

            async fn delete_user(&self, user_id: &str, now: Timestamp) -> Result<bool, StoreError> {
                tombstone_user(&self.pool, user_id, now).await
            }

            async fn import_users(&self, users: &[UserRecord]) -> Result<Vec<ImportOutcome>, StoreError> {
                import_batch(&self.pool, users).await
            }

            async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                if let Some(refresh_hash) = &session.refresh_token_hash {
                    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)")
                        .bind(refresh_hash)
                        .bind(&session.id)
                        .bind(session.created_at.millis())
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, kind, session_token_hash, created_at, \
                     last_seen_at, idle_timeout_ms, expires_at, refresh_current_hash, \
                     refresh_expires_at, user_agent, peer_address, management) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&session.id)
                .bind(&session.user_id)
                .bind(session.kind.as_str())
                .bind(&session.session_token_hash)
                .bind(session.created_at.millis())
                .bind(session.idle_timeout_ms)
                .bind(session.expires_at.millis())
                .bind(&session.refresh_token_hash)
                .bind(session.refresh_expires_at.map(Timestamp::millis))
                .bind(&session.user_agent)
                .bind(&session.peer_address)
                .bind(session.management)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn evict_sessions_beyond(&self, user_id: &str, keep: u32, now: Timestamp) -> Result<Vec<RevokedSession>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let rows = sqlx::query(
                    "UPDATE sessions SET revoked_at = $3, revoke_reason = $4 \
                     WHERE user_id = $1 AND revoked_at IS NULL AND id NOT IN ( \
                         SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
                         ORDER BY created_at DESC, id DESC LIMIT $2) \
                     RETURNING id, user_id, revoked_at",
                )
                .bind(user_id)
                .bind(i64::from(keep))
                .bind(now.millis())
                .bind(RevokeReason::Evicted.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let revoked: Vec<RevokedSession> = rows.iter().map(revoked_from_row).collect::<Result<_, _>>()?;
                for session in &revoked {
                    log_change(&mut *tx, "session", &session.user_id, Some(&session.session_id), session.revoked_at).await?;
                }
                tx.commit().await?;
                Ok(revoked)
            }

            async fn find_session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
                let row = sqlx::query(concat!($crate::store::sql::select_sessions!(), "WHERE s.id = $1"))
                    .bind(session_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(session_from_row).transpose()?)
            }

            async fn find_session_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<SessionRecord>, StoreError> {
                let row = sqlx::query(concat!($crate::store::sql::select_sessions!(), "WHERE s.session_token_hash = $1"))
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(session_from_row).transpose()?)
            }

            async fn find_session_by_refresh_hash(&self, token_hash: &[u8]) -> Result<Option<SessionRecord>, StoreError> {
                let row = sqlx::query(concat!(
                    $crate::store::sql::select_sessions!(),
                    "JOIN refresh_tokens r ON r.session_id = s.id WHERE r.token_hash = $1"
                ))
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(session_from_row).transpose()?)
            }

            async fn rotate_refresh(&self, rotation: &RefreshRotation) -> Result<Option<SessionRecord>, StoreError> {
                self.rotations.rotate(rotation.clone()).await
            }

            async fn touch_session(&self, session_id: &str, now: Timestamp) -> Result<(), StoreError> {
                sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
                    .bind(session_id)
                    .bind(now.millis())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn revoke_session(&self, session_id: &str, reason: RevokeReason, now: Timestamp) -> Result<Option<RevokedSession>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query(
                    "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 WHERE id = $1 AND revoked_at IS NULL \
                     RETURNING id, user_id, revoked_at",
                )
                .bind(session_id)
                .bind(now.millis())
                .bind(reason.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(revoked) = row.as_ref().map(revoked_from_row).transpose()? else {
                    return Ok(None);
                };
                log_change(&mut *tx, "session", &revoked.user_id, Some(&revoked.session_id), revoked.revoked_at).await?;
                tx.commit().await?;
                Ok(Some(revoked))
            }

            async fn revoke_user_sessions(
                &self,
                user_id: &str,
                keep: Option<&str>,
                reason: RevokeReason,
                now: Timestamp,
            ) -> Result<Vec<RevokedSession>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let rows = sqlx::query(
                    "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 \
                     WHERE user_id = $1 AND revoked_at IS NULL AND id <> $4 \
                     RETURNING id, user_id, revoked_at",
                )
                .bind(user_id)
                .bind(now.millis())
                .bind(reason.as_str())
                .bind(keep.unwrap_or_default())
                .fetch_all(&mut *tx)
                .await?;
                let revoked: Vec<RevokedSession> = rows.iter().map(revoked_from_row).collect::<Result<_, _>>()?;
                for session in &revoked {
                    log_change(&mut *tx, "session", &session.user_id, Some(&session.session_id), session.revoked_at).await?;
                }
                if keep.is_none() {
                    sqlx::query("UPDATE users SET sessions_revoked_before = $2 WHERE id = $1")
                        .bind(user_id)
                        .bind(now.millis())
                        .execute(&mut *tx)
                        .await?;
                    log_change(&mut *tx, "user", user_id, None, now).await?;
                }
                tx.commit().await?;
                Ok(revoked)
            }

            async fn count_live_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS live FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 \
                     AND last_seen_at + idle_timeout_ms > $1",
                )
                .bind(now.millis())
                .fetch_one(&self.pool)
                .await?;
                let live: i64 = row.try_get("live")?;
                Ok(u64::try_from(live).unwrap_or(0))
            }

            async fn revocations_since(&self, since: Timestamp) -> Result<Vec<RevokedSession>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, user_id, revoked_at FROM sessions WHERE revoked_at >= $1 ORDER BY revoked_at, id",
                )
                .bind(since.millis())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(revoked_from_row).collect::<Result<_, _>>()?)
            }

            async fn user_revocations_since(&self, since: Timestamp) -> Result<Vec<(String, Timestamp)>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, sessions_revoked_before FROM users WHERE sessions_revoked_before >= $1 \
                     ORDER BY sessions_revoked_before, id",
                )
                .bind(since.millis())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get("id")?, Timestamp::from_millis(row.try_get("sessions_revoked_before")?))))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<LoggedChange>, StoreError> {
                read_changes_after(&self.pool, after, limit).await
            }

            async fn changes_among(&self, seqs: &[i64]) -> Result<Vec<LoggedChange>, StoreError> {
                read_changes_among(&self.pool, seqs).await
            }

            async fn last_change_seq(&self) -> Result<i64, StoreError> {
                read_last_change_seq(&self.pool).await
            }

            async fn list_sessions(&self, user_id: &str, now: Timestamp, before: Option<&Keyset>, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
                list_sessions_page(&self.pool, user_id, now, before, limit).await
            }

            async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
                list_keys(&self.pool).await
            }

            async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
                insert_key(&self.pool, key).await
            }

            async fn rotate_signing_key(&self, rotation: &KeyRotation<'_>) -> Result<KeyRotationOutcome, StoreError> {
                rotate_keys(&self.pool, rotation).await
            }

            async fn erase_expired_signing_keys(&self, now: Timestamp) -> Result<u64, StoreError> {
                erase_keys(&self.pool, now).await
            }

            async fn replace_private_keys(&self, replacements: &[PrivateKeyReplacement]) -> Result<bool, StoreError> {
                replace_keys(&self.pool, replacements).await
            }

            async fn insert_service_client(
                &self,
                user: &UserRecord,
                client: &ServiceClientRecord,
                generation: &NewSession,
            ) -> Result<(), StoreError> {
                insert_client(&self.pool, user, client, generation).await
            }

            async fn find_service_client(&self, client_id: &str) -> Result<Option<ServiceClientRecord>, StoreError> {
                find_client(&self.pool, "id", client_id).await
            }

            async fn find_service_client_by_mtls(&self, identity: &str) -> Result<Option<ServiceClientRecord>, StoreError> {
                find_client(&self.pool, "mtls_identity", identity).await
            }

            async fn list_service_clients(&self) -> Result<Vec<ServiceClientRecord>, StoreError> {
                list_clients(&self.pool).await
            }

            async fn rotate_service_secret(&self, rotation: &ServiceRotation<'_>) -> Result<bool, StoreError> {
                rotate_client_secret(&self.pool, rotation).await
            }

            async fn lapsed_service_generations(&self, now: Timestamp) -> Result<Vec<LapsedGeneration>, StoreError> {
                lapsed_generations(&self.pool, now).await
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn retention(&self) -> Option<&dyn Retention> { Some(self) }

            fn account_codes(&self) -> Option<&dyn AccountCodes> { Some(self) }
        }

    };
}

pub(crate) use impl_sql_store;
