//! The refresh-rotation statements, for both backends: one transaction for a whole group commit
//! (`group_commit.rs`), each rotation an INSERT of the new token and a compare-and-set on the
//! session. Expanded inside `impl_sql_store!`, whose imports they use. A batch of several
//! sessions goes to the backend's `$together` (one call, `store/bulk_rotations.rs`); a lone
//! rotation, and a second rotation of a session already in the batch, to `rotate_one`.
//!
//! A rotation is idempotent: written twice (its batch committed but the confirmation was lost,
//! so the group commit writes it again alone), the second write finds the session already at the
//! rotation's new token, which only this rotation knows (256 random bits), and wins again instead
//! of reporting a lost race for a rotation that landed.

macro_rules! rotation_writer {
    ($row:ty, $together:path) => {
        type RotationTx = sqlx::Transaction<'static, <$row as sqlx::Row>::Database>;

        /// Writes the rotations of one group commit (`group_commit.rs`).
        pub struct SqlRotations {
            pool: sqlx::Pool<<$row as sqlx::Row>::Database>,
        }

        #[async_trait]
        impl $crate::store::sql::group_commit::RotationWriter for SqlRotations {
            async fn write_together(&self, batch: &[RefreshRotation]) -> Result<Vec<bool>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let won = rotate_in_bulk(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(won)
            }
        }

        /// The first rotation of each session together, then the repeats one by one: a repeat
        /// must see the first one's result.
        async fn rotate_in_bulk(tx: &mut RotationTx, batch: &[RefreshRotation]) -> Result<Vec<bool>, StoreError> {
            let (first, later) = $crate::store::bulk_rotations::split_repeated_sessions(batch);
            let mut won = vec![false; batch.len()];
            if let [only] = first[..] {
                won[only] = rotate_one(tx, &batch[only]).await?;
            } else {
                for (index, verdict) in first.iter().zip($together(tx, batch, &first).await?) {
                    won[*index] = verdict;
                }
            }
            for index in later {
                won[index] = rotate_one(tx, &batch[index]).await?;
            }
            Ok(won)
        }

        /// One rotation: whether its compare-and-set won.
        async fn rotate_one(tx: &mut RotationTx, rotation: &RefreshRotation) -> Result<bool, StoreError> {
            // The new token is recorded first: if the swap below loses its race, the row is an
            // orphan no client ever received, which is harmless; the reverse order could leave a
            // live token that reuse detection does not know.
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (token_hash) DO NOTHING",
            )
            .bind(&rotation.new_current)
            .bind(&rotation.session_id)
            .bind(rotation.now.millis())
            .execute(&mut **tx)
            .await?;
            let result = sqlx::query(
                "UPDATE sessions SET refresh_current_hash = $2, refresh_previous_hash = $3, \
                 refresh_rotated_at = $4, refresh_expires_at = $5, last_seen_at = $6 \
                 WHERE id = $1 AND (refresh_current_hash = $7 OR refresh_current_hash = $2) \
                 AND revoked_at IS NULL",
            )
            .bind(&rotation.session_id)
            .bind(&rotation.new_current)
            .bind(&rotation.new_previous)
            .bind(rotation.rotated_at.millis())
            .bind(rotation.refresh_expires_at.millis())
            .bind(rotation.now.millis())
            .bind(&rotation.expected_current)
            .execute(&mut **tx)
            .await?;
            Ok(result.rows_affected() == 1)
        }
    };
}

pub(crate) use rotation_writer;
