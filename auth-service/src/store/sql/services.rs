//! The service-client statements, for both backends (`domain/services.rs`): a client is a
//! principal row in `users`, a row in `service_clients` and a session per credential generation,
//! written together. Expanded inside `impl_sql_store!`, whose imports they use.

/// The columns of a [`ServiceClientRecord`](crate::domain::ports::ServiceClientRecord), with its
/// principal's disabled mark.
macro_rules! select_service_clients {
    () => {
        "SELECT c.id, c.audiences, c.exchange_audiences, c.mtls_identity, c.created_at, \
         c.secret_hash, c.generation, c.previous_secret_hash, c.previous_generation, \
         c.previous_valid_until, c.rotations, u.suspended_at \
         FROM service_clients c JOIN users u ON u.id = c.id "
    };
}

macro_rules! service_statements {
    ($row:ty) => {
        type ServiceDb = <$row as sqlx::Row>::Database;

        fn service_client_from_row(row: &$row) -> Result<ServiceClientRecord, sqlx::Error> {
            Ok(ServiceClientRecord {
                id: row.try_get("id")?,
                audiences: row.try_get("audiences")?,
                exchange_audiences: row.try_get("exchange_audiences")?,
                mtls_identity: row.try_get("mtls_identity")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                disabled_at: row.try_get::<Option<i64>, _>("suspended_at")?.map(Timestamp::from_millis),
                secret_hash: row.try_get("secret_hash")?,
                generation: row.try_get("generation")?,
                previous_secret_hash: row.try_get("previous_secret_hash")?,
                previous_generation: row.try_get("previous_generation")?,
                previous_valid_until: row
                    .try_get::<Option<i64>, _>("previous_valid_until")?
                    .map(Timestamp::from_millis),
                rotations: row.try_get("rotations")?,
            })
        }

        async fn insert_generation<'e, E>(executor: E, session: &NewSession) -> Result<(), sqlx::Error>
        where
            E: sqlx::Executor<'e, Database = ServiceDb>,
        {
            sqlx::query(
                "INSERT INTO sessions (id, user_id, kind, created_at, last_seen_at, idle_timeout_ms, \
                 expires_at, user_agent, peer_address, management) \
                 VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&session.id)
            .bind(&session.user_id)
            .bind(session.kind.as_str())
            .bind(session.created_at.millis())
            .bind(session.idle_timeout_ms)
            .bind(session.expires_at.millis())
            .bind(&session.user_agent)
            .bind(&session.peer_address)
            .bind(session.management)
            .execute(executor)
            .await?;
            Ok(())
        }

        async fn insert_client(
            pool: &sqlx::Pool<ServiceDb>,
            user: &UserRecord,
            client: &ServiceClientRecord,
            generation: &NewSession,
        ) -> Result<(), StoreError> {
            let mut tx = pool.begin().await?;
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
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO service_clients (id, audiences, exchange_audiences, mtls_identity, created_at, \
                 secret_hash, generation) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&client.id)
            .bind(&client.audiences)
            .bind(&client.exchange_audiences)
            .bind(&client.mtls_identity)
            .bind(client.created_at.millis())
            .bind(&client.secret_hash)
            .bind(&client.generation)
            .execute(&mut *tx)
            .await?;
            insert_generation(&mut *tx, generation).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn find_client(
            pool: &sqlx::Pool<ServiceDb>,
            column: &str,
            value: &str,
        ) -> Result<Option<ServiceClientRecord>, StoreError> {
            let sql = match column {
                "mtls_identity" => concat!($crate::store::sql::select_service_clients!(), "WHERE c.mtls_identity = $1"),
                _ => concat!($crate::store::sql::select_service_clients!(), "WHERE c.id = $1"),
            };
            let row = sqlx::query(sql).bind(value).fetch_optional(pool).await?;
            Ok(row.as_ref().map(service_client_from_row).transpose()?)
        }

        async fn list_clients(pool: &sqlx::Pool<ServiceDb>) -> Result<Vec<ServiceClientRecord>, StoreError> {
            let rows = sqlx::query(concat!($crate::store::sql::select_service_clients!(), "ORDER BY c.id"))
                .fetch_all(pool)
                .await?;
            Ok(rows.iter().map(service_client_from_row).collect::<Result<_, _>>()?)
        }

        async fn rotate_client_secret(
            pool: &sqlx::Pool<ServiceDb>,
            rotation: &ServiceRotation<'_>,
        ) -> Result<bool, StoreError> {
            let mut tx = pool.begin().await?;
            let swapped = sqlx::query(
                "UPDATE service_clients SET secret_hash = $3, generation = $4, previous_secret_hash = $5, \
                 previous_generation = $6, previous_valid_until = $7, rotations = rotations + 1 \
                 WHERE id = $1 AND rotations = $2",
            )
            .bind(rotation.client_id)
            .bind(rotation.expected_rotations)
            .bind(&rotation.secret_hash)
            .bind(&rotation.generation.id)
            .bind(rotation.previous_secret_hash)
            .bind(rotation.previous_generation)
            .bind(rotation.previous_valid_until.millis())
            .execute(&mut *tx)
            .await?;
            if swapped.rows_affected() != 1 {
                return Ok(false);
            }
            insert_generation(&mut *tx, rotation.generation).await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn lapsed_generations(
            pool: &sqlx::Pool<ServiceDb>,
            now: Timestamp,
        ) -> Result<Vec<LapsedGeneration>, StoreError> {
            let rows = sqlx::query(
                "SELECT c.id, c.previous_generation FROM service_clients c \
                 JOIN sessions s ON s.id = c.previous_generation \
                 WHERE c.previous_valid_until <= $1 AND s.revoked_at IS NULL ORDER BY c.id",
            )
            .bind(now.millis())
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(LapsedGeneration {
                        client_id: row.try_get("id")?,
                        session_id: row.try_get("previous_generation")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        }
    };
}

pub(crate) use {select_service_clients, service_statements};
