//! A group commit's rotations in one call instead of two statements per rotation
//! (`sql/rotations.rs`): every new token is recorded and every session compare-and-set at once.
//! Idempotent like `rotate_one`: a session already at the rotation's new token wins.
//!
//! - PostgreSQL: one statement; the batch travels as arrays and is unnested server-side, saving
//!   a round trip and a plan per rotation.
//! - SQLite: two statements sent in one call, the batch as bound `$n` parameters, seven a
//!   rotation. Each sqlx SQLite call is a hand-off to the connection's thread and back, and those
//!   hand-offs, not SQLite, were most of a refresh's CPU (BENCHMARKS.md, "The write path"). An
//!   earlier form with the batch as one JSON parameter re-parsed the JSON for every field and
//!   measured slower than statement by statement.

use std::collections::HashSet;

use sqlx::{Postgres, Sqlite, Transaction};

use crate::domain::ports::{RefreshRotation, StoreError};

/// The batch, one array per field; `RETURNING` names the sessions whose compare-and-set won.
const POSTGRES_BATCH: &str = "\
WITH batch AS (
    SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::bytea[], $5::int8[], $6::int8[], $7::int8[])
        AS b(session_id, expected_current, new_current, new_previous, rotated_at, refresh_expires_at, seen_at)
), recorded AS (
    INSERT INTO refresh_tokens (token_hash, session_id, issued_at)
    SELECT new_current, session_id, seen_at FROM batch
    ON CONFLICT (token_hash) DO NOTHING
)
UPDATE sessions AS s
SET refresh_current_hash = b.new_current, refresh_previous_hash = b.new_previous,
    refresh_rotated_at = b.rotated_at, refresh_expires_at = b.refresh_expires_at,
    last_seen_at = b.seen_at
FROM batch AS b
WHERE s.id = b.session_id
  AND (s.refresh_current_hash = b.expected_current OR s.refresh_current_hash = b.new_current)
  AND s.revoked_at IS NULL
RETURNING s.id";

/// Parameters per rotation in the SQLite batch, in this order.
const SQLITE_FIELDS: [&str; 7] = [
    "session_id",
    "expected_current",
    "new_current",
    "new_previous",
    "rotated_at",
    "refresh_expires_at",
    "seen_at",
];

/// The SQLite batch for `rotations` rotations, both statements over one `VALUES` list (a CTE
/// each; rotation `r`'s fields are `$7r+1` to `$7r+7` in [`SQLITE_FIELDS`] order, and sqlx binds
/// `$n` by number in both): an INSERT of every new token, then an UPDATE joined to the batch
/// (each session found by its primary key) whose `RETURNING` names the winners.
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
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not a join.
    format!(
        "{batch} INSERT INTO refresh_tokens (token_hash, session_id, issued_at) \
         SELECT new_current, session_id, seen_at FROM b WHERE true \
         ON CONFLICT (token_hash) DO NOTHING; \
         {batch} UPDATE sessions SET refresh_current_hash = b.new_current, refresh_previous_hash = b.new_previous, \
         refresh_rotated_at = b.rotated_at, refresh_expires_at = b.refresh_expires_at, last_seen_at = b.seen_at \
         FROM b WHERE sessions.id = b.session_id \
         AND (sessions.refresh_current_hash = b.expected_current OR sessions.refresh_current_hash = b.new_current) \
         AND sessions.revoked_at IS NULL \
         RETURNING sessions.id"
    )
}

/// The first rotation of each session goes into the one statement; a later rotation of the same
/// session in the batch (a race on one token) must see the first one's result, so it runs
/// after, on its own, through `rotate_one`.
pub(super) fn split_repeated_sessions(batch: &[RefreshRotation]) -> (Vec<usize>, Vec<usize>) {
    let mut seen = HashSet::with_capacity(batch.len());
    (0..batch.len()).partition(|&index| seen.insert(batch[index].session_id.as_str()))
}

/// Writes `first` (indexes into `batch`, one per session) in one statement; their verdicts.
pub(super) async fn postgres_together(
    tx: &mut Transaction<'static, Postgres>,
    batch: &[RefreshRotation],
    first: &[usize],
) -> Result<Vec<bool>, StoreError> {
    let sessions = column(batch, first, |r| r.session_id.as_str());
    let rows = sqlx::query(POSTGRES_BATCH)
        .bind(&sessions)
        .bind(column(batch, first, |r| r.expected_current.as_slice()))
        .bind(column(batch, first, |r| r.new_current.as_slice()))
        .bind(column(batch, first, |r| r.new_previous.as_slice()))
        .bind(column(batch, first, |r| r.rotated_at.millis()))
        .bind(column(batch, first, |r| r.refresh_expires_at.millis()))
        .bind(column(batch, first, |r| r.now.millis()))
        .fetch_all(&mut **tx)
        .await?;
    verdicts(batch, first, &rows)
}

/// Writes `first` (indexes into `batch`, one per session) in one call; their verdicts.
pub(super) async fn sqlite_together(
    tx: &mut Transaction<'static, Sqlite>,
    batch: &[RefreshRotation],
    first: &[usize],
) -> Result<Vec<bool>, StoreError> {
    let sql = sqlite_batch(first.len());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for rotation in first.iter().map(|&index| &batch[index]) {
        query = query
            .bind(rotation.session_id.as_str())
            .bind(rotation.expected_current.as_slice())
            .bind(rotation.new_current.as_slice())
            .bind(rotation.new_previous.as_slice())
            .bind(rotation.rotated_at.millis())
            .bind(rotation.refresh_expires_at.millis())
            .bind(rotation.now.millis());
    }
    let rows = query.fetch_all(&mut **tx).await?;
    verdicts(batch, first, &rows)
}

/// Whether each rotation at `first` won, from the session ids the batch returned.
fn verdicts<R: sqlx::Row>(
    batch: &[RefreshRotation],
    first: &[usize],
    rows: &[R],
) -> Result<Vec<bool>, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let winners = rows
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(first
        .iter()
        .map(|&index| winners.contains(&batch[index].session_id))
        .collect())
}

/// One field of the rotations at `first`, as the array the statement binds.
fn column<'a, T>(
    batch: &'a [RefreshRotation],
    first: &[usize],
    field: impl Fn(&'a RefreshRotation) -> T,
) -> Vec<T> {
    first.iter().map(|&index| field(&batch[index])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn rotation(session: &str) -> RefreshRotation {
        let at = Timestamp::from_millis(1);
        RefreshRotation {
            session_id: session.into(),
            expected_current: vec![0],
            new_current: vec![1],
            new_previous: vec![2],
            rotated_at: at,
            refresh_expires_at: at,
            now: at,
        }
    }

    #[test]
    fn the_sqlite_batch_numbers_seven_parameters_a_rotation() {
        let sql = sqlite_batch(2);
        let values = "AS (VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14))";
        assert_eq!(sql.matches(values).count(), 2, "{sql}");
    }

    #[test]
    fn a_second_rotation_of_a_session_is_kept_for_after_the_batch_statement() {
        let batch: Vec<_> = ["a", "b", "a", "c", "b", "a"]
            .into_iter()
            .map(rotation)
            .collect();
        let (first, later) = split_repeated_sessions(&batch);
        assert_eq!(first, [0, 1, 3]);
        assert_eq!(later, [2, 4, 5]);
    }
}
