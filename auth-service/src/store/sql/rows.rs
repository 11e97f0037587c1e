//! What the SQL reads back, for both backends: the columns of the user and session SELECTs, and
//! the decoders from a row (of either backend's row type) to a domain record. Kept apart from the
//! statements so that a column added to a table is added here once, for every query that reads it.

/// The columns of a [`SessionRecord`](crate::domain::ports::SessionRecord), `s` the session and
/// `u` its owner (a rotation returns them too: `store/bulk_rotations.rs`).
macro_rules! session_columns {
    () => {
        "s.id, s.user_id, u.email, u.roles, s.kind, s.session_token_hash, s.created_at, s.last_seen_at, \
         s.idle_timeout_ms, s.expires_at, s.refresh_current_hash, s.refresh_previous_hash, \
         s.refresh_rotated_at, s.refresh_expires_at, s.revoked_at, s.user_agent, s.peer_address, s.management, \
         u.email_verified_at, u.email_key AS owner_email_key, u.suspended_at AS owner_suspended_at "
    };
}

/// The sessions, joined with their owners.
macro_rules! select_sessions {
    () => {
        concat!(
            "SELECT ",
            $crate::store::sql::session_columns!(),
            "FROM sessions s JOIN users u ON u.id = s.user_id "
        )
    };
}

macro_rules! select_users {
    () => {
        "SELECT id, email, email_key, password_hash, roles, created_at, suspended_at FROM users "
    };
}

/// The row decoders, for the row type `$row`. Expanded inside `impl_sql_store!`, whose imports
/// (`sqlx::Row`, the domain records, `Timestamp`) they use.
macro_rules! decode_rows {
    ($row:ty) => {
        fn user_from_row(row: &$row) -> Result<UserRecord, sqlx::Error> {
            Ok(UserRecord {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                email_key: row.try_get("email_key")?,
                password_hash: row.try_get("password_hash")?,
                roles: row.try_get("roles")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                suspended_at: row
                    .try_get::<Option<i64>, _>("suspended_at")?
                    .map(Timestamp::from_millis),
            })
        }

        fn session_from_row(row: &$row) -> Result<SessionRecord, sqlx::Error> {
            let instant = |column: &str| -> Result<Option<Timestamp>, sqlx::Error> {
                Ok(row
                    .try_get::<Option<i64>, _>(column)?
                    .map(Timestamp::from_millis))
            };
            let kind: String = row.try_get("kind")?;
            Ok(SessionRecord {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                email: row.try_get("email")?,
                roles: row.try_get("roles")?,
                kind: SessionKind::parse(&kind).ok_or_else(|| sqlx::Error::ColumnDecode {
                    index: "kind".into(),
                    source: format!("unknown session kind {kind:?}").into(),
                })?,
                session_token_hash: row.try_get("session_token_hash")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                last_seen_at: Timestamp::from_millis(row.try_get("last_seen_at")?),
                idle_timeout_ms: row.try_get("idle_timeout_ms")?,
                expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
                refresh_current_hash: row.try_get("refresh_current_hash")?,
                refresh_previous_hash: row.try_get("refresh_previous_hash")?,
                refresh_rotated_at: instant("refresh_rotated_at")?,
                refresh_expires_at: instant("refresh_expires_at")?,
                revoked_at: instant("revoked_at")?,
                user_agent: row.try_get("user_agent")?,
                peer_address: row.try_get("peer_address")?,
                management: row.try_get("management")?,
                email_verified: instant("email_verified_at")?.is_some(),
                owner: OwnerStanding::of(
                    row.try_get("owner_email_key")?,
                    instant("owner_suspended_at")?.is_some(),
                ),
            })
        }

        fn revoked_from_row(row: &$row) -> Result<RevokedSession, sqlx::Error> {
            Ok(RevokedSession {
                session_id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                revoked_at: Timestamp::from_millis(row.try_get("revoked_at")?),
            })
        }

        fn key_from_row(row: &$row) -> Result<SigningKeyRecord, sqlx::Error> {
            Ok(SigningKeyRecord {
                kid: row.try_get("kid")?,
                private_pkcs8: row.try_get("private_key")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                activates_at: Timestamp::from_millis(row.try_get("activates_at")?),
                retires_at: row
                    .try_get::<Option<i64>, _>("retires_at")?
                    .map(Timestamp::from_millis),
                drop_after: row
                    .try_get::<Option<i64>, _>("drop_after")?
                    .map(Timestamp::from_millis),
                seq: row.try_get("seq")?,
                revoked_at: row
                    .try_get::<Option<i64>, _>("revoked_at")?
                    .map(Timestamp::from_millis),
            })
        }
    };
}

pub(crate) use {decode_rows, select_sessions, select_users, session_columns};
