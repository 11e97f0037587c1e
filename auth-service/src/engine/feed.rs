//! Following the revocation feed: what `WatchRevocations` streams and the ext_authz decision
//! cache consume. A follower subscribes to the hub *before* it reads what was recorded since its
//! cursor, so nothing falls between the snapshot and the live events; and a follower that falls
//! behind the hub's local buffer re-reads what it missed from the database, from its cursor (the
//! newest revocation it has handed out), instead of losing it.

use std::sync::Arc;

use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use super::hub::{FeedEvent, RevocationHub};
use crate::domain::{AuthError, Timestamp, model::Revocation};

pub struct Follower {
    hub: Arc<RevocationHub>,
    receiver: broadcast::Receiver<FeedEvent>,
    cursor: Option<Timestamp>,
}

/// What a follower has without waiting.
#[derive(Debug)]
pub enum Pending {
    Event(FeedEvent),
    /// Nothing new.
    Empty,
    /// Events were dropped: re-read from [`Follower::cursor`].
    FellBehind,
}

impl Follower {
    /// Follows `hub` from `after` (`None`: from what can still matter at `now`); returns the
    /// revocations recorded since then, oldest first.
    pub async fn open(
        hub: Arc<RevocationHub>,
        after: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(Self, Vec<Revocation>), AuthError> {
        let receiver = hub.subscribe();
        let snapshot = hub.recorded_since(after, now).await?;
        let mut follower = Self {
            hub,
            receiver,
            cursor: after,
        };
        follower.advance(&snapshot);
        Ok((follower, snapshot))
    }

    /// The newest revocation handed out (or the starting point).
    pub fn cursor(&self) -> Option<Timestamp> {
        self.cursor
    }

    /// Waits for the next events: one announced event, or, after falling behind, what the
    /// database recorded since the cursor. `None` once the hub is gone.
    pub async fn next(&mut self) -> Option<Result<Vec<FeedEvent>, AuthError>> {
        match self.receiver.recv().await {
            Ok(event) => {
                self.advance_event(&event);
                Some(Ok(vec![event]))
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "a revocation feed fell behind; re-reading");
                let revocations = self.reread(Timestamp::now()).await;
                Some(
                    revocations.map(|revocations| {
                        revocations.into_iter().map(FeedEvent::Revoked).collect()
                    }),
                )
            }
            Err(RecvError::Closed) => None,
        }
    }

    /// What arrived, without waiting (for checks that must see every announcement made before
    /// they began, synchronously).
    pub fn try_next(&mut self) -> Pending {
        match self.receiver.try_recv() {
            Ok(event) => {
                self.advance_event(&event);
                Pending::Event(event)
            }
            Err(TryRecvError::Lagged(_)) => Pending::FellBehind,
            Err(TryRecvError::Empty | TryRecvError::Closed) => Pending::Empty,
        }
    }

    /// What the database recorded since the cursor.
    pub async fn reread(&mut self, now: Timestamp) -> Result<Vec<Revocation>, AuthError> {
        let revocations = self.hub.recorded_since(self.cursor, now).await?;
        self.advance(&revocations);
        Ok(revocations)
    }

    fn advance(&mut self, revocations: &[Revocation]) {
        for revocation in revocations {
            self.cursor = Some(
                self.cursor
                    .map_or(revocation.at(), |c| c.max(revocation.at())),
            );
        }
    }

    fn advance_event(&mut self, event: &FeedEvent) {
        if let FeedEvent::Revoked(revocation) = event {
            self.advance(std::slice::from_ref(revocation));
        }
    }
}
