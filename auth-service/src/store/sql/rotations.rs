//! The refresh-rotation statements, for both backends: one transaction for a whole group commit
//! (`group_commit.rs`), each rotation an INSERT of the new token and a compare-and-set on the
//! session. Expanded inside `impl_sql_store!`, whose imports they use.

macro_rules! rotation_writer {
    ($row:ty) => {
        /// Writes the rotations of one group commit (`group_commit.rs`).
        pub struct SqlRotations {
            pool: sqlx::Pool<<$row as sqlx::Row>::Database>,
        }

        #[async_trait]
        impl $crate::store::sql::group_commit::RotationWriter for SqlRotations {
            async fn write_together(&self, batch: &[RefreshRotation]) -> Result<Vec<bool>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let mut won = Vec::with_capacity(batch.len());
                for rotation in batch {
                    // The new token is recorded first: if the swap below loses its race, the row
                    // is an orphan no client ever received, which is harmless; the reverse order
                    // could leave a live token that reuse detection does not know.
                    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)")
                        .bind(&rotation.new_current)
                        .bind(&rotation.session_id)
                        .bind(rotation.now.millis())
                        .execute(&mut *tx)
                        .await?;
                    let result = sqlx::query(
                        "UPDATE sessions SET refresh_current_hash = $2, refresh_previous_hash = $3, \
                         refresh_rotated_at = $4, refresh_expires_at = $5, last_seen_at = $6 \
                         WHERE id = $1 AND refresh_current_hash = $7 AND revoked_at IS NULL",
                    )
                    .bind(&rotation.session_id)
                    .bind(&rotation.new_current)
                    .bind(&rotation.new_previous)
                    .bind(rotation.rotated_at.millis())
                    .bind(rotation.refresh_expires_at.millis())
                    .bind(rotation.now.millis())
                    .bind(&rotation.expected_current)
                    .execute(&mut *tx)
                    .await?;
                    won.push(result.rows_affected() == 1);
                }
                tx.commit().await?;
                Ok(won)
            }
        }
    };
}

pub(crate) use rotation_writer;
