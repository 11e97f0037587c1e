//! The signing-key statements, for both backends: listing, the atomic rotation (with an optional
//! revocation in the same transaction) and the erasure of expired private halves. Expanded inside
//! `impl_sql_store!`, whose imports they use; kept apart so that the key lifecycle reads in one
//! place.

macro_rules! key_statements {
    ($row:ty) => {
        type KeyDb = <$row as sqlx::Row>::Database;

        async fn list_keys(pool: &sqlx::Pool<KeyDb>) -> Result<Vec<SigningKeyRecord>, StoreError> {
            let rows = sqlx::query(
                "SELECT kid, private_key, created_at, activates_at, retires_at, drop_after, seq, revoked_at \
                 FROM signing_keys ORDER BY seq",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
        }

        async fn rotate_keys(
            pool: &sqlx::Pool<KeyDb>,
            rotation: &KeyRotation<'_>,
        ) -> Result<KeyRotationOutcome, StoreError> {
            let now = rotation.now.millis();
            let mut tx = pool.begin().await?;
            if let Some(kid) = rotation.revoke {
                // Out of the JWKS at once, and the private half is of no further use.
                let revoked = sqlx::query(
                    "UPDATE signing_keys SET revoked_at = $2, private_key = NULL, drop_after = $2 \
                     WHERE kid = $1 AND revoked_at IS NULL",
                )
                .bind(kid)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if revoked.rows_affected() == 0 {
                    let known = sqlx::query("SELECT kid FROM signing_keys WHERE kid = $1")
                        .bind(kid)
                        .fetch_optional(&mut *tx)
                        .await?;
                    return Ok(if known.is_some() {
                        KeyRotationOutcome::AlreadyRevoked
                    } else {
                        KeyRotationOutcome::UnknownKid
                    });
                }
            }
            // Keys still waiting to activate never will: the rotation asked for last wins.
            sqlx::query(
                "UPDATE signing_keys SET private_key = NULL, retires_at = activates_at, drop_after = $1 \
                 WHERE activates_at > $1 AND private_key IS NOT NULL",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // The signing key (and any not yet retired) retires when the successor activates.
            sqlx::query(
                "UPDATE signing_keys SET retires_at = $1, drop_after = $2 \
                 WHERE private_key IS NOT NULL AND revoked_at IS NULL AND (retires_at IS NULL OR retires_at > $3)",
            )
            .bind(rotation.successor.activates_at.millis())
            .bind(rotation.drop_after.millis())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            insert_key(&mut *tx, rotation.successor).await?;
            tx.commit().await?;
            Ok(KeyRotationOutcome::Rotated)
        }

        async fn erase_keys(pool: &sqlx::Pool<KeyDb>, now: Timestamp) -> Result<u64, StoreError> {
            let erased = sqlx::query(
                "UPDATE signing_keys SET private_key = NULL \
                 WHERE private_key IS NOT NULL AND drop_after IS NOT NULL AND drop_after < $1",
            )
            .bind(now.millis())
            .execute(pool)
            .await?;
            Ok(erased.rows_affected())
        }

        /// All or nothing: each row only if it still holds what the caller read.
        async fn replace_keys(
            pool: &sqlx::Pool<KeyDb>,
            replacements: &[PrivateKeyReplacement],
        ) -> Result<bool, StoreError> {
            let mut tx = pool.begin().await?;
            for replacement in replacements {
                let replaced = sqlx::query("UPDATE signing_keys SET private_key = $3 WHERE kid = $1 AND private_key = $2")
                    .bind(&replacement.kid)
                    .bind(&replacement.expected)
                    .bind(&replacement.replacement)
                    .execute(&mut *tx)
                    .await?;
                if replaced.rows_affected() != 1 {
                    // Dropping the transaction rolls every earlier replacement back.
                    return Ok(false);
                }
            }
            tx.commit().await?;
            Ok(true)
        }

        /// `seq` is one past every key before it; the unique constraint on it refuses the loser
        /// of two rotations racing in the same instant (it may retry).
        async fn insert_key<'e, E>(executor: E, key: &SigningKeyRecord) -> Result<(), StoreError>
        where
            E: sqlx::Executor<'e, Database = KeyDb>,
        {
            sqlx::query(
                "INSERT INTO signing_keys (kid, private_key, created_at, activates_at, retires_at, drop_after, seq, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signing_keys), $7)",
            )
            .bind(&key.kid)
            .bind(&key.private_pkcs8)
            .bind(key.created_at.millis())
            .bind(key.activates_at.millis())
            .bind(key.retires_at.map(Timestamp::millis))
            .bind(key.drop_after.map(Timestamp::millis))
            .bind(key.revoked_at.map(Timestamp::millis))
            .execute(executor)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use key_statements;
