//! The pruning port: what the pruner (`engine/pruner.rs`) needs of a store to delete what no
//! rule needs any more, in small steps (the horizons: `domain/retention.rs`). Every delete
//! re-checks its condition, so a step is safe whatever ran between the read and the write.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::retention::Horizons;

/// Rows past the horizons, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneCounts {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub session_changes: u64,
    pub signing_keys: u64,
}

impl PruneCounts {
    pub fn total(&self) -> u64 {
        self.sessions + self.refresh_tokens + self.session_changes + self.signing_keys
    }
}

impl std::ops::AddAssign for PruneCounts {
    fn add_assign(&mut self, other: Self) {
        self.sessions += other.sessions;
        self.refresh_tokens += other.refresh_tokens;
        self.session_changes += other.session_changes;
        self.signing_keys += other.signing_keys;
    }
}

/// Held while one process prunes; released by [`PruneLease::release`] (or, if dropped, when
/// its connection closes).
#[async_trait]
pub trait PruneLease: Send {
    async fn release(self: Box<Self>);
}

#[async_trait]
pub trait Retention: Send + Sync {
    /// The lease that lets one process at a time prune this database; `None` while another
    /// holds it.
    async fn try_lease_pruning(&self) -> Result<Option<Box<dyn PruneLease>>, StoreError>;
    /// What is past the horizons now (for `prune --dry-run`).
    async fn count_prunable(&self, horizons: &Horizons) -> Result<PruneCounts, StoreError>;
    /// Up to `limit` sessions that ended before the horizon (a read).
    async fn ended_sessions(
        &self,
        horizons: &Horizons,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Deletes up to `limit` refresh-token hashes of `sessions` (ended before the horizon).
    async fn delete_refresh_tokens(
        &self,
        sessions: &[String],
        horizons: &Horizons,
        limit: u32,
    ) -> Result<u64, StoreError>;
    /// Deletes those of `sessions` that ended before the horizon and hold no refresh token.
    async fn delete_sessions(
        &self,
        sessions: &[String],
        horizons: &Horizons,
    ) -> Result<u64, StoreError>;
    /// Deletes up to `limit` change-log rows past the horizon, never the newest.
    async fn delete_changes(&self, horizons: &Horizons, limit: u32) -> Result<u64, StoreError>;
    /// Deletes up to `limit` signing-key rows without a private half past the horizon, older than
    /// every key that still has one.
    async fn delete_signing_keys(&self, horizons: &Horizons, limit: u32)
    -> Result<u64, StoreError>;
}
