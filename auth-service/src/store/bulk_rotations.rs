//! PostgreSQL writes a group commit's rotations in one statement instead of two per rotation
//! (`sql/rotations.rs`): the batch travels as arrays, is unnested server-side, and every new token
//! is recorded and every session compare-and-set at once, saving a round trip and a plan per
//! rotation. Idempotent like `rotate_one`: a session already at the rotation's new token wins.
//!
//! SQLite writes its batches statement by statement (`rotate_each`): a one-statement form with the
//! batch as a JSON parameter saved thread hand-offs but re-parsed the JSON for every field and
//! measured slower (BENCHMARKS.md, "The write path").

use std::collections::HashSet;

use sqlx::{Postgres, Row as _, Transaction};

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
    let winners = rows
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(sessions
        .iter()
        .map(|session| winners.contains(*session))
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
