//! The ext_authz decision cache: what lets a gateway check an access token with no database
//! round trip, yet never allow a revoked session.
//!
//! Verified access tokens are remembered by `AuthCore` itself (`auth_api::verified_tokens`, by
//! SHA-256, bounded), so a repeat check costs no signature. What this cache adds is the *revoked
//! set*: it holds the sessions (and users) revoked within the last access
//! token lifetime, fed by [`RevocationHub`]: every revocation this replica makes, and those other
//! replicas make (Redis pub/sub, or the database re-read every `AUTH_REVOCATION_POLL_INTERVAL`
//! while Redis is down). A session not in the revoked set is trusted for access tokens, as
//! [`auth_api::LocalVerifier`] does: its tokens expire within the access token lifetime anyway.
//!
//! Signatures are checked against the in-memory key ring (`AuthCore::decode_own_access_token`),
//! on a token's first sight only.
//! Before each decision the feed is drained synchronously, so a revocation announced on this
//! replica before the check began is always seen, whatever the background task is doing.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use auth_api::revoked_set::RevokedSet;
use tokio::{
    sync::broadcast::{self, error::RecvError},
    task::JoinHandle,
};

use super::{
    feed::{Follower, Pending},
    hub::{CLOCK_MARGIN, FeedEvent, RevocationHub},
};
use crate::domain::{
    AuthCore, AuthError, Timestamp,
    model::{CachedClaims, Revocation},
    ports::RevokedSetCheck,
};

/// How often expired cache entries and revocations that can no longer matter are dropped.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

pub struct DecisionCache {
    core: Arc<AuthCore>,
    hub: Arc<RevocationHub>,
    revoked: RwLock<RevokedSet>,
    /// This cache's place in the feed, drained before every decision; its cursor is where a
    /// re-read after falling behind starts.
    feed: Mutex<Follower>,
    /// The re-read from the database still to do after the subscription fell behind.
    reread: Mutex<PendingReread>,
}

/// Until a re-read after falling behind succeeds, every check attempts it (and fails if it
/// fails): a missed revocation must not be trusted away.
#[derive(Clone, Copy, Default)]
struct PendingReread {
    /// How many times the subscription fell behind: a re-read clears only the lags it covers.
    lags: u64,
    /// Re-read from this instant (`Some(None)`: from the relevance horizon); `None`: nothing to do.
    from: Option<Option<Timestamp>>,
}

impl DecisionCache {
    /// Subscribes to the hub, loads the revocations that still matter, and starts the task that
    /// keeps following the feed (abort it on shutdown).
    pub async fn start(
        core: Arc<AuthCore>,
        hub: Arc<RevocationHub>,
        now: Timestamp,
    ) -> Result<(Arc<Self>, JoinHandle<()>), AuthError> {
        // The doorbell first: anything the snapshot below misses rings it.
        let wake = hub.subscribe();
        let (feed, recorded) = Follower::open(hub.clone(), None, now).await?;
        let cache = Arc::new(Self {
            core,
            hub,
            revoked: RwLock::new(RevokedSet::default()),
            feed: Mutex::new(feed),
            reread: Mutex::new(PendingReread::default()),
        });
        cache.apply(recorded);
        let task = tokio::spawn(cache.clone().follow_feed(wake));
        Ok((cache, task))
    }

    /// The claims of a valid, unexpired access token (own audience) whose session has not been
    /// revoked. Verifies the signature only on the first sight of a token.
    pub async fn check_access_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<CachedClaims, AuthError> {
        self.catch_up(now).await?;
        let claims = CachedClaims::from(self.core.decode_own_access_token(token, now).await?);
        let revoked = self.revoked.read().map(|revoked| {
            revoked.is_revoked(&claims.session_id, &claims.user_id, claims.issued_at)
        });
        // A poisoned lock means a panic mid-update: refuse rather than guess.
        if revoked.unwrap_or(true) {
            return Err(AuthError::SessionRevoked);
        }
        Ok(claims)
    }

    /// Applies every announced revocation not applied yet, and re-reads from the database if the
    /// subscription fell behind.
    async fn catch_up(&self, now: Timestamp) -> Result<(), AuthError> {
        self.drain()?;
        let pending = *self.reread.lock().map_err(|_| poisoned())?;
        let Some(from) = pending.from else {
            return Ok(());
        };
        let recorded = self.hub.recorded_since(from, now).await?;
        self.apply(recorded);
        let mut reread = self.reread.lock().map_err(|_| poisoned())?;
        if reread.lags == pending.lags {
            reread.from = None;
        }
        Ok(())
    }

    /// Applies what the hub has announced since the last drain, without waiting. The feed stays
    /// locked until the revocations are applied, so no concurrent check can see the feed empty
    /// while they are still in transit.
    fn drain(&self) -> Result<(), AuthError> {
        let mut feed = self.feed.lock().map_err(|_| poisoned())?;
        let mut announced = Vec::new();
        loop {
            match feed.try_next() {
                Pending::Event(FeedEvent::Revoked(revocation)) => announced.push(revocation),
                // Checks use the key ring itself, which already distrusts a revoked key.
                Pending::Event(FeedEvent::KeysChanged(_) | FeedEvent::KeyRevoked(_)) => {}
                Pending::FellBehind => {
                    tracing::warn!("decision cache fell behind the revocation feed; re-reading");
                    let cursor = feed.cursor();
                    let mut reread = self.reread.lock().map_err(|_| poisoned())?;
                    reread.lags = reread.lags.wrapping_add(1);
                    reread.from = Some(reread.from.map_or(cursor, |from| from.min(cursor)));
                }
                Pending::Empty => break,
            }
        }
        self.apply(announced);
        drop(feed);
        Ok(())
    }

    fn apply(&self, revocations: Vec<Revocation>) {
        if revocations.is_empty() {
            return;
        }
        if let Ok(mut revoked) = self.revoked.write() {
            for revocation in &revocations {
                let keep_until = self
                    .hub
                    .tokens_live_until(revocation.at())
                    .plus(CLOCK_MARGIN + Duration::from_millis(999))
                    .unix_seconds();
                match revocation {
                    Revocation::Session { session_id, .. } => {
                        revoked.revoke_session(session_id, keep_until);
                    }
                    Revocation::User {
                        user_id,
                        revoked_before,
                    } => revoked.revoke_user(user_id, revoked_before.unix_seconds(), keep_until),
                }
            }
        }
    }

    fn forget_expired(&self, now: Timestamp) {
        if let Ok(mut revoked) = self.revoked.write() {
            revoked.forget_expired(now.unix_seconds());
        }
    }

    /// Applies revocations as they are announced (so the feed never backs up while no check
    /// comes in) and sweeps expired entries.
    async fn follow_feed(self: Arc<Self>, mut wake: broadcast::Receiver<FeedEvent>) {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = wake.recv() => {
                    if let Err(RecvError::Closed) = received {
                        return;
                    }
                }
                _ = sweep.tick() => self.forget_expired(Timestamp::now()),
            }
            if let Err(error) = self.catch_up(Timestamp::now()).await {
                tracing::warn!(%error, "decision cache could not catch up with revocations");
            }
        }
    }
}

#[async_trait]
impl RevokedSetCheck for DecisionCache {
    async fn check_access_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<CachedClaims, AuthError> {
        DecisionCache::check_access_token(self, token, now).await
    }
}

fn poisoned() -> AuthError {
    AuthError::Internal("decision cache lock poisoned (a panic mid-update)".into())
}
