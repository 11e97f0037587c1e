//! The account-administration statements, for both backends: a filtered page of accounts and of
//! a user's sessions (keyset pagination), the tombstone a deletion leaves, and an import batch in
//! one transaction. Expanded inside `impl_sql_store!`, whose imports they use.

macro_rules! admin_statements {
    ($row:ty) => {
        type AdminDb = <$row as sqlx::Row>::Database;

        /// `filter.role` as a LIKE pattern over `' ' || roles || ' '` (the role between spaces),
        /// with LIKE's own characters escaped; empty for no role filter.
        fn role_pattern(role: &str) -> String {
            if role.is_empty() {
                return String::new();
            }
            let escaped: String = role
                .chars()
                .flat_map(|c| match c {
                    '\\' | '%' | '_' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!("% {escaped} %")
        }

        async fn list_users_page(
            pool: &sqlx::Pool<AdminDb>,
            filter: &UserFilter,
            after: Option<&Keyset>,
            limit: u32,
        ) -> Result<Vec<UserRecord>, StoreError> {
            let suspended: i64 = match filter.suspended {
                None => 0,
                Some(true) => 1,
                Some(false) => 2,
            };
            let rows = sqlx::query(concat!(
                $crate::store::sql::select_users!(),
                "WHERE deleted_at IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM service_clients c WHERE c.id = users.id) \
                 AND (created_at > $1 OR (created_at = $1 AND id > $2)) \
                 AND substr(email_key, 1, length($3)) = $3 \
                 AND ($4 = '' OR (' ' || roles || ' ') LIKE $4 ESCAPE '\\') \
                 AND ($5 = 0 OR ($5 = 1 AND suspended_at IS NOT NULL) OR ($5 = 2 AND suspended_at IS NULL)) \
                 ORDER BY created_at, id LIMIT $6"
            ))
            .bind(after.map_or(i64::MIN, |at| at.created_at.millis()))
            .bind(after.map_or("", |at| at.id.as_str()))
            .bind(&filter.email_key_prefix)
            .bind(role_pattern(&filter.role))
            .bind(suspended)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
        }

        async fn tombstone_user(
            pool: &sqlx::Pool<AdminDb>,
            user_id: &str,
            now: Timestamp,
        ) -> Result<bool, StoreError> {
            let result = sqlx::query(
                "UPDATE users SET deleted_at = $2, email = '', email_key = $3 || id, \
                 password_hash = '', roles = '' WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(user_id)
            .bind(now.millis())
            .bind(TOMBSTONE_KEY_PREFIX)
            .execute(pool)
            .await?;
            Ok(result.rows_affected() == 1)
        }

        async fn import_batch(
            pool: &sqlx::Pool<AdminDb>,
            users: &[UserRecord],
        ) -> Result<Vec<ImportOutcome>, StoreError> {
            let mut tx = pool.begin().await?;
            let mut outcomes = Vec::with_capacity(users.len());
            for user in users {
                let inserted = sqlx::query(
                    "INSERT INTO users (id, email, email_key, password_hash, roles, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(&user.id)
                .bind(&user.email)
                .bind(&user.email_key)
                .bind(&user.password_hash)
                .bind(&user.roles)
                .bind(user.created_at.millis())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let outcome = if inserted {
                    ImportOutcome::Inserted
                } else if sqlx::query("SELECT 1 AS taken FROM users WHERE email_key = $1")
                    .bind(&user.email_key)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some()
                {
                    ImportOutcome::DuplicateEmail
                } else {
                    ImportOutcome::IdTaken
                };
                outcomes.push(outcome);
            }
            tx.commit().await?;
            Ok(outcomes)
        }

        async fn list_sessions_page(
            pool: &sqlx::Pool<AdminDb>,
            user_id: &str,
            now: Timestamp,
            before: Option<&Keyset>,
            limit: u32,
        ) -> Result<Vec<SessionRecord>, StoreError> {
            let rows = sqlx::query(concat!(
                $crate::store::sql::select_sessions!(),
                "WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
                 AND s.last_seen_at + s.idle_timeout_ms > $2 \
                 AND (s.created_at < $3 OR (s.created_at = $3 AND s.id < $4)) \
                 ORDER BY s.created_at DESC, s.id DESC LIMIT $5"
            ))
            .bind(user_id)
            .bind(now.millis())
            .bind(before.map_or(i64::MAX, |at| at.created_at.millis()))
            .bind(before.map_or("", |at| at.id.as_str()))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(session_from_row).collect::<Result<_, _>>()?)
        }
    };
}

pub(crate) use admin_statements;
