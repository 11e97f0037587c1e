//! Reading the change log (`session_changes`): how a replica learns of every revocation and role
//! change made anywhere, whether or not it heard the Redis message, within one
//! `AUTH_REVOCATION_POLL_INTERVAL`.
//!
//! The log is read by its database-assigned `seq`, never by the instant a change carries: that
//! instant is when the request *started*, on the writer's clock, so a transaction that took long
//! to commit, or a replica whose clock is off, would put a change behind a time cursor for good.
//! A `seq` is taken at insert, though, not at commit, and PostgreSQL commits concurrent
//! transactions in any order: seq 11 can be visible before seq 10. So every number the reader
//! skipped over is remembered and asked for again on each read until it turns up (its
//! transaction committed) or it has been waited for longer than any token it could revoke lives
//! ([`ChangeReader::new`]'s `patience`, on this replica's clock): then it was rolled back, or no
//! longer matters.

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;

use crate::domain::{
    Timestamp,
    ports::{LoggedChange, Store, StoreError},
};

/// What the reader needs of the store.
#[async_trait]
pub trait ChangeLog: Send + Sync {
    async fn after(&self, after: i64, limit: u32) -> Result<Vec<LoggedChange>, StoreError>;
    async fn among(&self, seqs: &[i64]) -> Result<Vec<LoggedChange>, StoreError>;
    async fn last_seq(&self) -> Result<i64, StoreError>;
}

#[async_trait]
impl<T: Store + ?Sized> ChangeLog for T {
    async fn after(&self, after: i64, limit: u32) -> Result<Vec<LoggedChange>, StoreError> {
        self.changes_after(after, limit).await
    }
    async fn among(&self, seqs: &[i64]) -> Result<Vec<LoggedChange>, StoreError> {
        self.changes_among(seqs).await
    }
    async fn last_seq(&self) -> Result<i64, StoreError> {
        self.last_change_seq().await
    }
}

/// Changes read per query.
const PAGE: u32 = 1000;
/// Skipped numbers remembered at most (the oldest go first).
const MAX_SKIPPED: usize = 10_000;
/// On the first read, how far back skipped numbers are looked for (transactions in flight then).
const STARTUP_LOOKBACK: u32 = 1000;

pub struct ChangeReader {
    /// The highest `seq` read; `None` before the first read.
    read_up_to: Option<i64>,
    /// Numbers skipped over -> when that was noticed (this replica's clock).
    skipped: BTreeMap<i64, Timestamp>,
    patience: Duration,
}

impl ChangeReader {
    /// A skipped number is asked for again for `patience` after it was noticed.
    pub fn new(patience: Duration) -> Self {
        Self {
            read_up_to: None,
            skipped: BTreeMap::new(),
            patience,
        }
    }

    /// The changes committed since the last read, lowest `seq` first among the new ones. The
    /// first read starts at the end of the log and returns nothing (what was recorded before is
    /// read by time, by the feeds' snapshots). On an error nothing is consumed.
    pub async fn read(
        &mut self,
        store: &(impl ChangeLog + ?Sized),
        now: Timestamp,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        let Some(mut last) = self.read_up_to else {
            self.start(store, now).await?;
            return Ok(Vec::new());
        };
        let mut skipped = self.skipped.clone();
        let horizon = now.minus(self.patience);
        skipped.retain(|_, noticed| *noticed >= horizon);
        let mut found = Vec::new();
        if !skipped.is_empty() {
            let asked: Vec<i64> = skipped.keys().copied().collect();
            for change in store.among(&asked).await? {
                skipped.remove(&change.seq);
                found.push(change);
            }
        }
        loop {
            let page = store.after(last, PAGE).await?;
            let full = page.len() >= PAGE as usize;
            for change in page {
                note_skipped(&mut skipped, last, change.seq, now);
                last = last.max(change.seq);
                found.push(change);
            }
            if !full {
                break;
            }
        }
        self.read_up_to = Some(last);
        self.skipped = skipped;
        Ok(found)
    }

    /// Numbers waited for (for tests and metrics).
    pub fn skipped_count(&self) -> usize {
        self.skipped.len()
    }

    async fn start(
        &mut self,
        store: &(impl ChangeLog + ?Sized),
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let last = store.last_seq().await?;
        let from = last.saturating_sub(i64::from(STARTUP_LOOKBACK)).max(0);
        let recent = store.after(from, STARTUP_LOOKBACK).await?;
        let mut skipped = BTreeMap::new();
        let mut previous = from;
        for change in recent.iter().filter(|change| change.seq <= last) {
            note_skipped(&mut skipped, previous, change.seq, now);
            previous = change.seq;
        }
        note_skipped(&mut skipped, previous, last + 1, now);
        self.skipped = skipped;
        self.read_up_to = Some(last);
        Ok(())
    }
}

/// Remembers the numbers strictly between `last` and `next`.
fn note_skipped(skipped: &mut BTreeMap<i64, Timestamp>, last: i64, next: i64, now: Timestamp) {
    let cap = i64::try_from(MAX_SKIPPED).unwrap_or(i64::MAX);
    for seq in (last + 1).max(next.saturating_sub(cap))..next {
        skipped.insert(seq, now);
    }
    while skipped.len() > MAX_SKIPPED {
        skipped.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{model::Revocation, ports::FanoutEvent};

    /// A log whose rows become visible in any order, as on PostgreSQL.
    #[derive(Default)]
    struct Log(std::sync::Mutex<Vec<LoggedChange>>);

    fn change(seq: i64) -> LoggedChange {
        LoggedChange {
            seq,
            event: FanoutEvent::Revoked(Revocation::Session {
                session_id: format!("s{seq}"),
                user_id: "u".into(),
                revoked_at: Timestamp::from_millis(0),
            }),
        }
    }

    #[async_trait]
    impl ChangeLog for Log {
        async fn after(&self, after: i64, limit: u32) -> Result<Vec<LoggedChange>, StoreError> {
            let rows = self.0.lock().map(|rows| rows.clone()).unwrap_or_default();
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            Ok(rows
                .into_iter()
                .filter(|c| c.seq > after)
                .take(limit)
                .collect())
        }
        async fn among(&self, seqs: &[i64]) -> Result<Vec<LoggedChange>, StoreError> {
            let rows = self.0.lock().map(|rows| rows.clone()).unwrap_or_default();
            Ok(rows.into_iter().filter(|c| seqs.contains(&c.seq)).collect())
        }
        async fn last_seq(&self) -> Result<i64, StoreError> {
            let rows = self.0.lock().map(|rows| rows.clone()).unwrap_or_default();
            Ok(rows.last().map_or(0, |c| c.seq))
        }
    }

    impl Log {
        fn commit(&self, seq: i64) {
            if let Ok(mut rows) = self.0.lock() {
                rows.push(change(seq));
                rows.sort_by_key(|row| row.seq);
            }
        }
    }

    fn seqs(changes: &[LoggedChange]) -> Vec<i64> {
        changes.iter().map(|change| change.seq).collect()
    }

    async fn read(reader: &mut ChangeReader, log: &Log, at: i64) -> Vec<i64> {
        let changes = reader.read(log, Timestamp::from_millis(at)).await;
        seqs(&changes.unwrap_or_default())
    }

    #[tokio::test]
    async fn a_change_committed_after_a_later_one_is_still_read() {
        let log = Log::default();
        log.commit(1);
        let mut reader = ChangeReader::new(Duration::from_secs(60));
        assert!(
            read(&mut reader, &log, 0).await.is_empty(),
            "starts at the end"
        );
        // seq 2 is taken by a slow transaction; 3 commits first.
        log.commit(3);
        assert_eq!(read(&mut reader, &log, 1_000).await, vec![3]);
        assert_eq!(reader.skipped_count(), 1);
        log.commit(2);
        assert_eq!(read(&mut reader, &log, 2_000).await, vec![2]);
        assert_eq!(reader.skipped_count(), 0);
        assert!(read(&mut reader, &log, 3_000).await.is_empty());
    }

    #[tokio::test]
    async fn a_transaction_in_flight_at_the_first_read_is_still_read() {
        let log = Log::default();
        log.commit(1);
        log.commit(3);
        let mut reader = ChangeReader::new(Duration::from_secs(60));
        assert!(read(&mut reader, &log, 0).await.is_empty());
        log.commit(2);
        assert_eq!(read(&mut reader, &log, 1_000).await, vec![2]);
    }

    #[tokio::test]
    async fn a_number_never_committed_is_given_up_after_the_patience() {
        let log = Log::default();
        let mut reader = ChangeReader::new(Duration::from_secs(60));
        assert!(read(&mut reader, &log, 0).await.is_empty());
        log.commit(2); // 1 was rolled back
        assert_eq!(read(&mut reader, &log, 0).await, vec![2]);
        assert_eq!(reader.skipped_count(), 1);
        let _ = read(&mut reader, &log, 61_000).await;
        assert_eq!(reader.skipped_count(), 0);
    }
}
