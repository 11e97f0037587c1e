//! The refresh-rotation writer, for both backends: one transaction for a whole group commit
//! (`group_commit.rs`) on SQLite, where a batch is several statements; none on PostgreSQL, where
//! it is one statement (atomic alone, and two round trips fewer). The rotations expecting
//! distinct tokens go to the backend's `$together` (one call, `store/bulk_rotations.rs`); a
//! second rotation expecting a token already in the batch runs after, on its own, so it sees the
//! first one's result. Expanded inside `impl_sql_store!`, whose imports and row decoders it uses.

macro_rules! rotation_writer {
    ($row:ty, $together:path, $together_is_atomic:literal) => {
        type RotationConnection = <<$row as sqlx::Row>::Database as sqlx::Database>::Connection;

        /// Writes the rotations of one group commit (`group_commit.rs`).
        pub struct SqlRotations {
            pool: sqlx::Pool<<$row as sqlx::Row>::Database>,
        }

        #[async_trait]
        impl $crate::store::sql::group_commit::RotationWriter for SqlRotations {
            /// The session the rotation won, as it left it; `None` if it lost.
            type Verdict = Option<SessionRecord>;

            async fn write_together(
                &self,
                batch: &[RefreshRotation],
            ) -> Result<Vec<Option<SessionRecord>>, StoreError> {
                let mut won = vec![None; batch.len()];
                let mut connection = self.pool.acquire().await?;
                if $together_is_atomic {
                    // Each call commits on its own; a repeat runs after the first one's commit.
                    write_all(&mut connection, batch, &mut won).await?;
                } else {
                    let mut tx = sqlx::Connection::begin(&mut *connection).await?;
                    write_all(&mut tx, batch, &mut won).await?;
                    tx.commit().await?;
                }
                Ok(won)
            }
        }

        /// The rotations expecting distinct tokens in one call, then each repeat on its own.
        async fn write_all(
            connection: &mut RotationConnection,
            batch: &[RefreshRotation],
            won: &mut [Option<SessionRecord>],
        ) -> Result<(), StoreError> {
            let (first, later) = $crate::store::bulk_rotations::split_repeated_heads(batch);
            write_rotations(connection, batch, &first, won).await?;
            for index in later {
                write_rotations(connection, batch, &[index], won).await?;
            }
            Ok(())
        }

        /// Writes the rotations at `indexes` in one call and records each winner's session
        /// (the one now at that rotation's new token) in `won`.
        async fn write_rotations(
            connection: &mut RotationConnection,
            batch: &[RefreshRotation],
            indexes: &[usize],
            won: &mut [Option<SessionRecord>],
        ) -> Result<(), StoreError> {
            for row in $together(connection, batch, indexes).await? {
                let session = session_from_row(&row)?;
                let winner = indexes.iter().copied().find(|&index| {
                    session.refresh_current_hash.as_deref()
                        == Some(batch[index].new_current.as_slice())
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
