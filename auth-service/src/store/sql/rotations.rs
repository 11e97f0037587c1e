//! The refresh-rotation writer, for both backends: one transaction for a whole group commit
//! (`group_commit.rs`). The rotations expecting distinct tokens go to the backend's `$together`
//! (one call, `store/bulk_rotations.rs`); a second rotation expecting a token already in the
//! batch runs after, on its own, so it sees the first one's result. Expanded inside
//! `impl_sql_store!`, whose imports and row decoders it uses.

macro_rules! rotation_writer {
    ($row:ty, $together:path) => {
        type RotationTx = sqlx::Transaction<'static, <$row as sqlx::Row>::Database>;

        /// Writes the rotations of one group commit (`group_commit.rs`).
        pub struct SqlRotations {
            pool: sqlx::Pool<<$row as sqlx::Row>::Database>,
        }

        #[async_trait]
        impl $crate::store::sql::group_commit::RotationWriter for SqlRotations {
            /// The session the rotation won, as it left it; `None` if it lost.
            type Verdict = Option<SessionRecord>;

            async fn write_together(&self, batch: &[RefreshRotation]) -> Result<Vec<Option<SessionRecord>>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let (first, later) = $crate::store::bulk_rotations::split_repeated_heads(batch);
                let mut won = vec![None; batch.len()];
                write_rotations(&mut tx, batch, &first, &mut won).await?;
                for index in later {
                    write_rotations(&mut tx, batch, &[index], &mut won).await?;
                }
                tx.commit().await?;
                Ok(won)
            }
        }

        /// Writes the rotations at `indexes` in one call and records each winner's session
        /// (the one now at that rotation's new token) in `won`.
        async fn write_rotations(
            tx: &mut RotationTx,
            batch: &[RefreshRotation],
            indexes: &[usize],
            won: &mut [Option<SessionRecord>],
        ) -> Result<(), StoreError> {
            for row in $together(tx, batch, indexes).await? {
                let session = session_from_row(&row)?;
                let winner = indexes.iter().copied().find(|&index| {
                    session.refresh_current_hash.as_deref() == Some(batch[index].new_current.as_slice())
                });
                if let Some(index) = winner {
                    won[index] = Some(session);
                }
            }
            Ok(())
        }
    };
}

pub(crate) use rotation_writer;
