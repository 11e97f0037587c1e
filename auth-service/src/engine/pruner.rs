//! The pruner: deletes what no rule needs any more (the horizons and why they are safe:
//! `domain/retention.rs`): sessions that ended long enough ago with their refresh-token hashes,
//! old change-log rows, and signing-key rows that will never sign nor verify again.
//!
//! It runs as a background task on every replica (`AUTH_PRUNE_INTERVAL`) and as
//! `auth-service prune`; a lease (`Retention::try_lease_pruning`: a PostgreSQL advisory lock)
//! lets one process at a time do it. It works in small batches (`AUTH_PRUNE_BATCH_SIZE` rows a
//! statement) with a pause between them (`AUTH_PRUNE_BATCH_PAUSE`), and finds its candidates by
//! reads, so that `Verify` and `Refresh` never queue behind a long delete.

use std::{sync::Arc, time::Duration};

use crate::domain::{
    Timestamp,
    ports::{PruneCounts, Retention, Store, StoreError},
    retention::{Horizons, RetentionPolicy},
};

/// How to prune.
#[derive(Clone, Copy, Debug)]
pub struct PruneRules {
    pub policy: RetentionPolicy,
    /// Rows per delete statement.
    pub batch_size: u32,
    /// Rest between two statements.
    pub pause: Duration,
}

/// What one run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PruneOutcome {
    /// Rows deleted.
    Pruned(PruneCounts),
    /// `--dry-run`: rows that would be deleted now; nothing was.
    WouldPrune(PruneCounts),
    /// Another process holds the lease: nothing was done.
    Busy,
}

/// One run at `now`.
pub async fn prune(
    store: &dyn Store,
    rules: &PruneRules,
    now: Timestamp,
    dry_run: bool,
) -> Result<PruneOutcome, StoreError> {
    let Some(retention) = store.retention() else {
        return Ok(PruneOutcome::WouldPrune(PruneCounts::default()));
    };
    let horizons = rules.policy.horizons(now);
    if dry_run {
        return Ok(PruneOutcome::WouldPrune(
            retention.count_prunable(&horizons).await?,
        ));
    }
    let Some(lease) = retention.try_lease_pruning().await? else {
        return Ok(PruneOutcome::Busy);
    };
    let pruned = prune_leased(retention, &horizons, rules).await;
    lease.release().await;
    pruned.map(PruneOutcome::Pruned)
}

async fn prune_leased(
    retention: &dyn Retention,
    horizons: &Horizons,
    rules: &PruneRules,
) -> Result<PruneCounts, StoreError> {
    let batch = rules.batch_size.max(1);
    let full = |deleted: u64| deleted >= u64::from(batch);
    let mut done = PruneCounts::default();
    loop {
        let sessions = retention.ended_sessions(horizons, batch).await?;
        if sessions.is_empty() {
            break;
        }
        // The hashes first: a session is never gone while a hash still names it.
        loop {
            let deleted = retention
                .delete_refresh_tokens(&sessions, horizons, batch)
                .await?;
            done.refresh_tokens += deleted;
            tokio::time::sleep(rules.pause).await;
            if !full(deleted) {
                break;
            }
        }
        let deleted = retention.delete_sessions(&sessions, horizons).await?;
        done.sessions += deleted;
        tokio::time::sleep(rules.pause).await;
        // A short page was the last; nothing deleted means what is left cannot go yet.
        if sessions.len() < batch as usize || deleted == 0 {
            break;
        }
    }
    loop {
        let deleted = retention.delete_changes(horizons, batch).await?;
        done.session_changes += deleted;
        if !full(deleted) {
            break;
        }
        tokio::time::sleep(rules.pause).await;
    }
    loop {
        let deleted = retention.delete_signing_keys(horizons, batch).await?;
        done.signing_keys += deleted;
        if !full(deleted) {
            break;
        }
        tokio::time::sleep(rules.pause).await;
    }
    Ok(done)
}

/// Prunes every `interval` (the first run after at most a minute, so replicas that restart
/// often still prune); `None` when `interval` is zero (pruning off). Abort it on shutdown.
pub fn spawn(
    store: Arc<dyn Store>,
    rules: PruneRules,
    interval: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        tokio::time::sleep(interval.min(Duration::from_secs(60))).await;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match prune(store.as_ref(), &rules, Timestamp::now(), false).await {
                Ok(PruneOutcome::Pruned(counts)) if counts.total() > 0 => tracing::info!(
                    sessions = counts.sessions,
                    refresh_tokens = counts.refresh_tokens,
                    session_changes = counts.session_changes,
                    signing_keys = counts.signing_keys,
                    "pruned rows past their retention"
                ),
                Ok(PruneOutcome::Busy) => {
                    tracing::debug!("another process is pruning; skipped");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "pruning failed; retrying next interval"),
            }
        }
    }))
}
