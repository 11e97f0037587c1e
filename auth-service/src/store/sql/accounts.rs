//! The account-code statements, for both backends (the port: `domain/ports/accounts.rs`; the
//! rules: `domain/recovery.rs`). Issuing a code runs the same statements whether or not the
//! address names an account; consuming one is a compare-and-set on `consumed_at`, in the
//! transaction that applies what the code allows. Expanded inside `impl_sql_store!`, whose
//! imports (and `log_change`) they use.

macro_rules! account_statements {
    ($store:ty, $row:ty) => {
        use crate::domain::ports::{AccountCodes, CodePurpose, CodeRecipient, CodeRecord, NewCode};

        type AccountDb = <$row as sqlx::Row>::Database;

        /// Marks a live code of `purpose` consumed: its account, if this call consumed it.
        async fn consume_code(
            tx: &mut sqlx::Transaction<'_, AccountDb>,
            hash: &[u8],
            purpose: CodePurpose,
            now: Timestamp,
        ) -> Result<Option<String>, sqlx::Error> {
            let row = sqlx::query(
                "UPDATE account_codes SET consumed_at = $3 WHERE code_hash = $1 AND purpose = $2 \
                 AND user_id IS NOT NULL AND consumed_at IS NULL AND expires_at > $3 RETURNING user_id",
            )
            .bind(hash)
            .bind(purpose.as_str())
            .bind(now.millis())
            .fetch_optional(&mut **tx)
            .await?;
            row.map(|row| row.try_get("user_id")).transpose()
        }

        #[async_trait]
        impl AccountCodes for $store {
            async fn issue_code(&self, code: &NewCode<'_>) -> Result<Option<CodeRecipient>, StoreError> {
                let mut tx = self.pool.begin().await?;
                // The account's earlier codes of the purpose, and expired rows of unknown addresses.
                sqlx::query(
                    "DELETE FROM account_codes WHERE purpose = $2 AND (user_id IN \
                     (SELECT id FROM users WHERE email_key = $1) OR (user_id IS NULL AND expires_at <= $3))",
                )
                .bind(code.email_key)
                .bind(code.purpose.as_str())
                .bind(code.created_at.millis())
                .execute(&mut *tx)
                .await?;
                // One row either way (user_id NULL for an unknown address): the commit writes, and
                // waits for the disk, in both cases.
                let row = sqlx::query(
                    "INSERT INTO account_codes (code_hash, user_id, purpose, created_at, expires_at) \
                     SELECT $1, (SELECT id FROM users WHERE email_key = $5), $2, $3, $4 RETURNING user_id",
                )
                .bind(code.hash)
                .bind(code.purpose.as_str())
                .bind(code.created_at.millis())
                .bind(code.expires_at.millis())
                .bind(code.email_key)
                .fetch_optional(&mut *tx)
                .await?;
                let email = sqlx::query("SELECT email FROM users WHERE email_key = $1")
                    .bind(code.email_key)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                match (row, email) {
                    (Some(row), Some(email)) => match row.try_get::<Option<String>, _>("user_id")? {
                        Some(user_id) => Ok(Some(CodeRecipient {
                            user_id,
                            email: email.try_get("email")?,
                        })),
                        None => Ok(None),
                    },
                    _ => Ok(None),
                }
            }

            async fn find_code(&self, hash: &[u8]) -> Result<Option<CodeRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT user_id, purpose, expires_at, consumed_at FROM account_codes WHERE code_hash = $1",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                // A row written for an unknown address grants nothing.
                let Some(user_id) = row.try_get::<Option<String>, _>("user_id")? else {
                    return Ok(None);
                };
                let purpose: String = row.try_get("purpose")?;
                let purpose = match purpose.as_str() {
                    "verify_email" => CodePurpose::VerifyEmail,
                    "reset_password" => CodePurpose::ResetPassword,
                    // A purpose this version does not know grants nothing here.
                    _ => return Ok(None),
                };
                Ok(Some(CodeRecord {
                    user_id,
                    purpose,
                    expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
                    consumed: row.try_get::<Option<i64>, _>("consumed_at")?.is_some(),
                }))
            }

            async fn confirm_email(&self, hash: &[u8], now: Timestamp) -> Result<Option<String>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let Some(user_id) = consume_code(&mut tx, hash, CodePurpose::VerifyEmail, now).await? else {
                    return Ok(None);
                };
                sqlx::query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1")
                    .bind(&user_id)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?;
                // Verify reads the mark with the session: replicas forget what they remember.
                log_change(&mut *tx, "roles", &user_id, None, now).await?;
                tx.commit().await?;
                Ok(Some(user_id))
            }

            async fn reset_password(
                &self,
                hash: &[u8],
                password_hash: &str,
                now: Timestamp,
            ) -> Result<Option<String>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let Some(user_id) = consume_code(&mut tx, hash, CodePurpose::ResetPassword, now).await? else {
                    return Ok(None);
                };
                sqlx::query(
                    "UPDATE users SET password_hash = $2, \
                     email_verified_at = COALESCE(email_verified_at, $3) WHERE id = $1",
                )
                .bind(&user_id)
                .bind(password_hash)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(user_id))
            }

            async fn set_email_verified(&self, user_id: &str, verified: bool, now: Timestamp) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let result = if verified {
                    sqlx::query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1")
                        .bind(user_id)
                        .bind(now.millis())
                        .execute(&mut *tx)
                        .await?
                } else {
                    sqlx::query("UPDATE users SET email_verified_at = NULL WHERE id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                };
                if result.rows_affected() != 1 {
                    return Ok(false);
                }
                log_change(&mut *tx, "roles", user_id, None, now).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn email_verified(&self, user_id: &str) -> Result<bool, StoreError> {
                let row = sqlx::query("SELECT email_verified_at FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => row.try_get::<Option<i64>, _>("email_verified_at")?.is_some(),
                    None => false,
                })
            }
        }
    };
}

pub(crate) use account_statements;
