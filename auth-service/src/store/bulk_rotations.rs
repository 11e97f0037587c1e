//! A group commit's rotations in one call instead of statement by statement: every session
//! compare-and-set, every winner's new token recorded, and every winner read back with its
//! owner, at once.
//! Each rotation finds its session through the token it expects to replace (`refresh_tokens`
//! knows every token a session issued), so a refresh can rotate without reading first. The
//! compare-and-set also refuses a session that is no longer live at the rotation's `now`: the
//! rule of `SessionRecord::ensure_live` (revoked, or at or past its idle or absolute end),
//! stated here in SQL so the one write can apply it; the store suite's
//! `rotations::a_rotation_refuses_a_session_that_is_no_longer_live` holds the two together.
//! Idempotent: a session already at the rotation's new token (which only that rotation knows, 256
//! random bits) wins again, so a batch written twice after a lost confirmation reports the truth.
//!
//! - PostgreSQL: one statement; the batch travels as arrays and is unnested server-side, saving
//!   a round trip and a plan per rotation.
//! - SQLite: three statements sent in one call, the batch as bound `$n` parameters, six a
//!   rotation. Each sqlx SQLite call is a hand-off to the connection's thread and back, and those
//!   hand-offs, not SQLite, were most of a refresh's CPU (BENCHMARKS.md, "The write path"). An
//!   earlier form with the batch as one JSON parameter re-parsed the JSON for every field and
//!   measured slower than statement by statement.

use std::collections::HashSet;

use sqlx::{PgConnection, SqliteConnection, postgres::PgRow, sqlite::SqliteRow};

use crate::domain::ports::{RefreshRotation, StoreError};

/// The compare-and-set, for a batch row `b` and the session `s` its expected token belongs to:
/// the head is still the expected token (or already the rotation's own), and the session is live
/// at `b.seen_at` (`SessionRecord::ensure_live`).
macro_rules! still_head_and_live {
    () => {
        "(s.refresh_current_hash = b.expected_current OR s.refresh_current_hash = b.new_current) \
         AND s.revoked_at IS NULL AND b.seen_at < s.expires_at \
         AND b.seen_at < s.last_seen_at + s.idle_timeout_ms"
    };
}

/// The batch, one array per field, each row's session found first by a probe of the token's
/// primary key. (Joined instead, the planner's generic plan compared every batch row with every
/// live session before that join, which grew with the table: BENCHMARKS.md, "Third step".)
/// The winners' new tokens are recorded in the same statement, so never a live token that reuse
/// detection does not know, and their sessions, with their owners, are the statement's rows.
const POSTGRES_BATCH: &str = concat!(
    "WITH batch AS MATERIALIZED (
    SELECT b.*, (SELECT r.session_id FROM refresh_tokens r WHERE r.token_hash = b.expected_current) AS session_id
    FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::int8[], $5::int8[], $6::int8[])
        AS b(expected_current, new_current, new_previous, rotated_at, refresh_expires_at, seen_at)
), rotated AS (
    UPDATE sessions AS s
    SET refresh_current_hash = b.new_current, refresh_previous_hash = b.new_previous,
        refresh_rotated_at = b.rotated_at, refresh_expires_at = LEAST(b.refresh_expires_at, s.expires_at),
        last_seen_at = b.seen_at
    FROM batch AS b, users AS u
    WHERE s.id = b.session_id AND u.id = s.user_id AND ",
    still_head_and_live!(),
    " RETURNING b.seen_at AS issued_at, ",
    crate::store::sql::session_columns!(),
    "), recorded AS (
    INSERT INTO refresh_tokens (token_hash, session_id, issued_at)
    SELECT refresh_current_hash, id, issued_at FROM rotated
    ON CONFLICT (token_hash) DO NOTHING
)
SELECT * FROM rotated"
);

/// Parameters per rotation in the SQLite batch, in this order.
const SQLITE_FIELDS: [&str; 6] = [
    "expected_current",
    "new_current",
    "new_previous",
    "rotated_at",
    "refresh_expires_at",
    "seen_at",
];

/// The SQLite batch for `rotations` rotations, three statements over one `VALUES` list (a CTE
/// each; rotation `r`'s fields are `$6r+1` to `$6r+6` in [`SQLITE_FIELDS`] order, and sqlx binds
/// `$n` by number in all three): an UPDATE of each session found through its expected token, an
/// INSERT of the winners' new tokens, and a SELECT
/// of the winners with their owners. SQLite's `RETURNING` cannot name another table, hence the
/// SELECT.
fn sqlite_batch(rotations: usize) -> String {
    let rows: Vec<String> = (0..rotations)
        .map(|r| {
            let numbers: Vec<String> = (1..=SQLITE_FIELDS.len())
                .map(|field| format!("${}", r * SQLITE_FIELDS.len() + field))
                .collect();
            format!("({})", numbers.join(", "))
        })
        .collect();
    let batch = format!(
        "WITH b({}) AS (VALUES {})",
        SQLITE_FIELDS.join(", "),
        rows.join(", ")
    );
    // A session now at a batch row's new token: that rotation won.
    let (winners, won) = (
        "FROM b JOIN refresh_tokens r ON r.token_hash = b.expected_current JOIN sessions s ON s.id = r.session_id",
        "WHERE s.refresh_current_hash = b.new_current",
    );
    format!(
        "{batch} UPDATE sessions AS s SET refresh_current_hash = b.new_current, refresh_previous_hash = b.new_previous, \
         refresh_rotated_at = b.rotated_at, refresh_expires_at = MIN(b.refresh_expires_at, s.expires_at), \
         last_seen_at = b.seen_at \
         FROM b JOIN refresh_tokens r ON r.token_hash = b.expected_current \
         WHERE s.id = r.session_id AND {cas}; \
         {batch} INSERT INTO refresh_tokens (token_hash, session_id, issued_at) \
         SELECT b.new_current, s.id, b.seen_at {winners} {won} ON CONFLICT (token_hash) DO NOTHING; \
         {batch} SELECT {columns} {winners} JOIN users u ON u.id = s.user_id {won}",
        cas = still_head_and_live!(),
        columns = crate::store::sql::session_columns!(),
    )
}

/// The first rotation expecting each token goes into the one statement; a later rotation
/// expecting the same token (a race on one token) must see the first one's result, so it runs
/// after, on its own. Rotations expecting different tokens of one session cannot both win: at
/// most one expects the head.
pub(super) fn split_repeated_heads(batch: &[RefreshRotation]) -> (Vec<usize>, Vec<usize>) {
    let mut seen = HashSet::with_capacity(batch.len());
    (0..batch.len()).partition(|&index| seen.insert(batch[index].expected_current.as_slice()))
}

/// Writes the rotations at `indexes` (no two expecting the same token) in one statement; the
/// winners' sessions.
pub(super) async fn postgres_together(
    connection: &mut PgConnection,
    batch: &[RefreshRotation],
    indexes: &[usize],
) -> Result<Vec<PgRow>, StoreError> {
    Ok(sqlx::query(POSTGRES_BATCH)
        .bind(column(batch, indexes, |r| r.expected_current.as_slice()))
        .bind(column(batch, indexes, |r| r.new_current.as_slice()))
        .bind(column(batch, indexes, |r| r.new_previous.as_slice()))
        .bind(column(batch, indexes, |r| r.rotated_at.millis()))
        .bind(column(batch, indexes, |r| r.refresh_expires_at.millis()))
        .bind(column(batch, indexes, |r| r.now.millis()))
        .fetch_all(&mut *connection)
        .await?)
}

/// Writes the rotations at `indexes` (no two expecting the same token) in one call; the
/// winners' sessions.
pub(super) async fn sqlite_together(
    connection: &mut SqliteConnection,
    batch: &[RefreshRotation],
    indexes: &[usize],
) -> Result<Vec<SqliteRow>, StoreError> {
    let sql = sqlite_batch(indexes.len());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for rotation in indexes.iter().map(|&index| &batch[index]) {
        query = query
            .bind(rotation.expected_current.as_slice())
            .bind(rotation.new_current.as_slice())
            .bind(rotation.new_previous.as_slice())
            .bind(rotation.rotated_at.millis())
            .bind(rotation.refresh_expires_at.millis())
            .bind(rotation.now.millis());
    }
    Ok(query.fetch_all(&mut *connection).await?)
}

/// One field of the rotations at `indexes`, as the array the statement binds.
fn column<'a, T>(
    batch: &'a [RefreshRotation],
    indexes: &[usize],
    field: impl Fn(&'a RefreshRotation) -> T,
) -> Vec<T> {
    indexes.iter().map(|&index| field(&batch[index])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn rotation(expected: &str) -> RefreshRotation {
        let at = Timestamp::from_millis(1);
        RefreshRotation {
            expected_current: expected.as_bytes().to_vec(),
            new_current: vec![1],
            new_previous: vec![2],
            rotated_at: at,
            refresh_expires_at: at,
            now: at,
        }
    }

    #[test]
    fn the_sqlite_batch_numbers_six_parameters_a_rotation() {
        let sql = sqlite_batch(2);
        let values = "AS (VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12))";
        assert_eq!(sql.matches(values).count(), 3, "{sql}");
    }

    #[test]
    fn a_second_rotation_expecting_a_token_is_kept_for_after_the_batch_statement() {
        let batch: Vec<_> = ["a", "b", "a", "c", "b", "a"]
            .into_iter()
            .map(rotation)
            .collect();
        let (first, later) = split_repeated_heads(&batch);
        assert_eq!(first, [0, 1, 3]);
        assert_eq!(later, [2, 4, 5]);
    }
}
