//! A group commit's rotations in one round trip per table instead of two statements per rotation
//! (`sql/rotations.rs`): the batch travels as one parameter (arrays on PostgreSQL, a JSON array
//! on SQLite) and the database records every new token and compare-and-sets every session at
//! once. On PostgreSQL that saves a round trip and a plan per rotation; on SQLite, where every
//! statement is a hand-off to the connection's worker thread and back, it saves the thread
//! switches that were most of a refresh's CPU. Both are idempotent like `rotate_one`: a session
//! already at the rotation's new token wins.

use std::{collections::HashSet, fmt::Write as _};

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
    let pick = |field: fn(&RefreshRotation) -> Vec<u8>| -> Vec<Vec<u8>> {
        first.iter().map(|&index| field(&batch[index])).collect()
    };
    let millis = |field: fn(&RefreshRotation) -> i64| -> Vec<i64> {
        first.iter().map(|&index| field(&batch[index])).collect()
    };
    let sessions: Vec<&str> = first
        .iter()
        .map(|&index| batch[index].session_id.as_str())
        .collect();
    let rows = sqlx::query(POSTGRES_BATCH)
        .bind(&sessions)
        .bind(pick(|r| r.expected_current.clone()))
        .bind(pick(|r| r.new_current.clone()))
        .bind(pick(|r| r.new_previous.clone()))
        .bind(millis(|r| r.rotated_at.millis()))
        .bind(millis(|r| r.refresh_expires_at.millis()))
        .bind(millis(|r| r.now.millis()))
        .fetch_all(&mut **tx)
        .await?;
    verdicts(&sessions, &rows)
}

/// The batch as a JSON array of `[session, expected, new, previous, rotated_at,
/// refresh_expires_at, now]`, hashes in hex. `INSERT ... SELECT` needs its `WHERE true` before
/// an upsert clause (SQLite's parsing ambiguity); `RETURNING` names the sessions that won.
const SQLITE_RECORD: &str = "\
INSERT INTO refresh_tokens (token_hash, session_id, issued_at)
SELECT unhex(value ->> 2), value ->> 0, value ->> 6 FROM json_each($1) WHERE true
ON CONFLICT (token_hash) DO NOTHING";
const SQLITE_SWAP: &str = "\
UPDATE sessions
SET refresh_current_hash = unhex(b.value ->> 2), refresh_previous_hash = unhex(b.value ->> 3),
    refresh_rotated_at = b.value ->> 4, refresh_expires_at = b.value ->> 5,
    last_seen_at = b.value ->> 6
FROM json_each($1) AS b
WHERE sessions.id = b.value ->> 0
  AND (sessions.refresh_current_hash = unhex(b.value ->> 1)
       OR sessions.refresh_current_hash = unhex(b.value ->> 2))
  AND sessions.revoked_at IS NULL
RETURNING sessions.id";

/// Like [`postgres_together`], in two statements (SQLite's `RETURNING` cannot see a data-modifying
/// CTE's table): the new tokens first, then the swaps.
pub(super) async fn sqlite_together(
    tx: &mut Transaction<'static, Sqlite>,
    batch: &[RefreshRotation],
    first: &[usize],
) -> Result<Vec<bool>, StoreError> {
    let sessions: Vec<&str> = first
        .iter()
        .map(|&index| batch[index].session_id.as_str())
        .collect();
    let json = sqlite_batch_json(batch, first)?;
    sqlx::query(SQLITE_RECORD)
        .bind(&json)
        .execute(&mut **tx)
        .await?;
    let rows = sqlx::query(SQLITE_SWAP)
        .bind(&json)
        .fetch_all(&mut **tx)
        .await?;
    verdicts(&sessions, &rows)
}

fn sqlite_batch_json(batch: &[RefreshRotation], first: &[usize]) -> Result<String, StoreError> {
    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
                let _ = write!(out, "{byte:02x}");
                out
            })
    }
    let rows: Vec<serde_json::Value> = first
        .iter()
        .map(|&index| {
            let r = &batch[index];
            serde_json::json!([
                r.session_id,
                hex(&r.expected_current),
                hex(&r.new_current),
                hex(&r.new_previous),
                r.rotated_at.millis(),
                r.refresh_expires_at.millis(),
                r.now.millis(),
            ])
        })
        .collect();
    serde_json::to_string(&rows).map_err(|error| StoreError::Other(error.to_string()))
}

/// One verdict per session of `sessions`: whether `RETURNING` named it.
fn verdicts<R: sqlx::Row>(sessions: &[&str], rows: &[R]) -> Result<Vec<bool>, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    let winners = rows
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(sessions
        .iter()
        .map(|session| winners.contains(*session))
        .collect())
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
    fn the_sqlite_batch_carries_hashes_in_hex_and_instants_as_numbers() {
        let batch = [rotation("a"), rotation("b")];
        let json = sqlite_batch_json(&batch, &[1]).unwrap();
        assert_eq!(json, r#"[["b","00","01","02",1,1,1]]"#);
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
