//! The revocation hub: where every ended session is announced, so services that verify access
//! tokens locally learn of it within milliseconds instead of at the token's expiry.
//!
//! The database is the record of truth (a revoked session has `revoked_at`, and every change is
//! logged in `session_changes`); the hub only spreads the news. Locally it is a broadcast
//! channel that feeds `WatchRevocations` streams; across replicas an optional [`Fanout`] (Redis
//! pub/sub) carries events between processes. Every replica, with Redis or not, re-reads the
//! change log on a short period ([`spawn_reconciler`], [`super::changes`]): pub/sub delivers at
//! most once, and without Redis it is the only way news from other replicas arrives. Nothing
//! acknowledged is lost, and duplicates are dropped here.
//!
//! A message from Redis is a hint, never the news itself: whoever can publish on the channel
//! could have forged it. A hint makes the session cache forget (always safe: the next check
//! reads the database) and triggers an immediate re-read of the change log; only what the log
//! holds is delivered to feeds. So a forged event can neither revoke a live session nor, by
//! taking a real revocation's place in the de-duplication, suppress it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{changes::ChangeReader, keys::KeyManager, session_cache::LiveSessions};
use crate::domain::{
    AuthError, Timestamp,
    model::Revocation,
    ports::{Fanout, FanoutEvent, FanoutListener, RevocationNews, Store},
};

/// Replicas' clocks and commit delays differ: resuming a feed from a cursor starts this much
/// before the cursor (the change log itself is read by sequence, not by time).
pub const CLOCK_MARGIN: Duration = Duration::from_secs(5);
const LOCAL_BUFFER: usize = 4096;

/// What the local feed carries.
#[derive(Clone, Debug)]
pub enum FeedEvent {
    Revoked(Revocation),
    /// The key set changed; carries the new JWKS.
    KeysChanged(String),
    /// A signing key was revoked as compromised; carries its `kid`.
    KeyRevoked(String),
}

pub struct RevocationHub {
    store: Arc<dyn Store>,
    local: broadcast::Sender<FeedEvent>,
    fanout: Option<Arc<dyn Fanout>>,
    /// Told of every revocation before anyone else, so `Verify` never answers from memory for a
    /// session that has ended.
    live_sessions: Arc<LiveSessions>,
    /// Told when another replica revoked a signing key.
    keys: Option<Arc<KeyManager>>,
    /// Recently delivered events (key -> when), so re-reads and echoes are delivered once.
    delivered: Mutex<HashMap<String, Timestamp>>,
    /// How long an access token can outlive its session's revocation (its TTL plus leeway).
    tokens_outlive_revocation_by: Duration,
    /// Revocations this process announced (exported as a metric).
    announced: AtomicU64,
    /// Open `WatchRevocations` streams (exported as a metric).
    feed_streams: Arc<std::sync::atomic::AtomicUsize>,
    /// Where this replica is in the change log; one read at a time.
    changes: tokio::sync::Mutex<ChangeReader>,
}

/// How long a skipped change-log number is waited for, beyond the longest a token outlives its
/// session's revocation.
const CHANGE_PATIENCE_MARGIN: Duration = Duration::from_secs(60);

/// Counts one open feed stream for as long as it lives.
pub struct FeedStreamGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for FeedStreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RevocationHub {
    pub fn new(store: Arc<dyn Store>, tokens_outlive_revocation_by: Duration) -> Self {
        Self {
            store,
            local: broadcast::channel(LOCAL_BUFFER).0,
            fanout: None,
            live_sessions: Arc::new(LiveSessions::off()),
            keys: None,
            delivered: Mutex::new(HashMap::new()),
            tokens_outlive_revocation_by,
            announced: AtomicU64::new(0),
            feed_streams: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            changes: tokio::sync::Mutex::new(ChangeReader::new(
                tokens_outlive_revocation_by + CHANGE_PATIENCE_MARGIN,
            )),
        }
    }

    pub fn with_fanout(mut self, fanout: Arc<dyn Fanout>) -> Self {
        self.fanout = Some(fanout);
        self
    }

    /// Keeps `live_sessions` in step with every revocation this hub hears of.
    pub fn with_live_sessions(mut self, live_sessions: Arc<LiveSessions>) -> Self {
        self.live_sessions = live_sessions;
        self
    }

    /// Makes `keys` distrust a key another replica revoked, at once.
    pub fn with_keys(mut self, keys: Arc<KeyManager>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Another replica revoked `kid`: refuse its tokens from now (before confirming), tell the
    /// local feeds, and re-read the keys so that the successor is published here too.
    /// Another replica says it revoked signing key `kid`: a hint, like every fan-out message.
    /// The keys are re-read before the message is confirmed, and the feeds hear of it only if
    /// the store holds the key as revoked, so a message forged on Redis distrusts nothing.
    async fn key_revoked_elsewhere(&self, kid: String) {
        let Some(keys) = &self.keys else { return };
        if let Err(error) = keys.reload().await {
            tracing::warn!(%error, "re-reading the signing keys failed");
            return;
        }
        let ring = keys.ring().await;
        if ring.revoked_kids().contains(&kid) {
            let jwks = ring.jwks_json(Timestamp::now());
            let _ = self.local.send(FeedEvent::KeyRevoked(kid));
            let _ = self.local.send(FeedEvent::KeysChanged(jwks));
        }
    }

    pub fn live_sessions(&self) -> &Arc<LiveSessions> {
        &self.live_sessions
    }

    pub fn has_fanout(&self) -> bool {
        self.fanout.is_some()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.local.subscribe()
    }

    pub fn announced_count(&self) -> u64 {
        self.announced.load(Ordering::Relaxed)
    }

    /// Marks a feed stream open until the returned guard is dropped.
    pub fn feed_stream_opened(&self) -> FeedStreamGuard {
        self.feed_streams.fetch_add(1, Ordering::Relaxed);
        FeedStreamGuard(self.feed_streams.clone())
    }

    pub fn feed_stream_count(&self) -> usize {
        self.feed_streams.load(Ordering::Relaxed)
    }

    /// Until when an access token of a session revoked at `revoked_at` can be unexpired.
    pub fn tokens_live_until(&self, revoked_at: Timestamp) -> Timestamp {
        revoked_at.plus(self.tokens_outlive_revocation_by)
    }

    /// The oldest revocation that still matters at `now`.
    pub fn relevance_horizon(&self, now: Timestamp) -> Timestamp {
        now.minus(self.tokens_outlive_revocation_by)
    }

    async fn publish(&self, events: &[FanoutEvent]) {
        let Some(fanout) = &self.fanout else { return };
        if events.is_empty() {
            return;
        }
        if let Err(error) = fanout.publish(events).await {
            // Other replicas' session caches are off while they cannot hear the fan-out, and
            // they re-read revocations from the database.
            tracing::warn!(%error, "fan-out failed; other replicas will re-read from the database");
        }
    }

    /// Hands an event (local or from another replica) to local subscribers, once.
    pub fn deliver(&self, revocation: Revocation) {
        // Even a repeat: it costs a map lookup, and a cache must never miss a revocation.
        self.live_sessions.forget(&revocation);
        let key = revocation.dedupe_key();
        {
            let Ok(mut delivered) = self.delivered.lock() else {
                return;
            };
            if delivered.contains_key(&key) {
                return;
            }
            // Forget what can no longer arrive again: older than any re-read window.
            if delivered.len() > 10_000 {
                let horizon = revocation
                    .at()
                    .minus(self.tokens_outlive_revocation_by + CLOCK_MARGIN * 2);
                delivered.retain(|_, at| *at >= horizon);
            }
            delivered.insert(key, revocation.at());
        }
        // No subscriber is not an error.
        let _ = self.local.send(FeedEvent::Revoked(revocation));
    }

    /// Revocations recorded since `since` (minus the clock margin), oldest first, bounded by
    /// what can still matter at `now`.
    pub async fn recorded_since(
        &self,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Vec<Revocation>, AuthError> {
        let horizon = self.relevance_horizon(now);
        let from = since.map_or(horizon, |since| since.minus(CLOCK_MARGIN).max(horizon));
        let mut revocations: Vec<Revocation> = self
            .store
            .user_revocations_since(from)
            .await?
            .into_iter()
            .map(|(user_id, revoked_before)| Revocation::User {
                user_id,
                revoked_before,
            })
            .collect();
        revocations.extend(
            self.store
                .revocations_since(from)
                .await?
                .into_iter()
                .map(Revocation::from),
        );
        revocations.sort_by_key(Revocation::at);
        Ok(revocations)
    }

    /// Reads the change log from where this replica left it and applies what it holds: delivers
    /// revocations, and makes the session cache forget users whose roles changed. The first call
    /// only finds the end of the log: make it before serving. Returns how many changes it read.
    pub async fn reread_changes(&self, now: Timestamp) -> Result<usize, AuthError> {
        let mut reader = self.changes.lock().await;
        let changes = reader.read(self.store.as_ref(), now).await?;
        let count = changes.len();
        for change in changes {
            match change.event {
                FanoutEvent::Revoked(revocation) => self.deliver(revocation),
                FanoutEvent::RolesChanged { user_id } => self.live_sessions.forget_user(&user_id),
                // Key revocations are read from the key table, not the change log.
                FanoutEvent::SigningKeyRevoked { kid } => self.key_revoked_elsewhere(kid).await,
            }
        }
        Ok(count)
    }
}

/// Re-reads the change log on a period: the safety net under pub/sub, and without Redis the only
/// way other replicas' revocations and role changes arrive. Abort the task on shutdown.
pub fn spawn_reconciler(hub: Arc<RevocationHub>, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(error) = hub.reread_changes(Timestamp::now()).await {
                tracing::warn!(%error, "re-reading the change log failed");
            }
        }
    })
}

#[async_trait]
impl FanoutListener for RevocationHub {
    /// Hints (see the module comment): the session cache forgets at once, which is always safe;
    /// then the store says what really changed (the change log, the key table), and only that
    /// reaches the feeds.
    async fn apply(&self, events: Vec<FanoutEvent>) {
        let mut revoked_keys = Vec::new();
        for event in events {
            match event {
                FanoutEvent::Revoked(revocation) => self.live_sessions.forget(&revocation),
                FanoutEvent::RolesChanged { user_id } => self.live_sessions.forget_user(&user_id),
                FanoutEvent::SigningKeyRevoked { kid } => revoked_keys.push(kid),
            }
        }
        for kid in revoked_keys {
            self.key_revoked_elsewhere(kid).await;
        }
        if let Err(error) = self.reread_changes(Timestamp::now()).await {
            // The next periodic re-read delivers it; the cache has forgotten already.
            tracing::warn!(%error, "re-reading the change log after a fan-out message failed");
        }
    }

    /// The session cache may answer again: no news from another replica can be missed now.
    fn subscribed(&self) {
        self.live_sessions.trust();
    }

    fn unsubscribed(&self) {
        self.live_sessions.distrust();
    }
}

#[async_trait]
impl RevocationNews for RevocationHub {
    /// Announces revocations made by this process: to local subscribers at once, then to the
    /// other replicas. A fan-out failure is logged, not returned: the revocation is already
    /// durable, and other replicas re-read it from the database.
    async fn announce(&self, revocations: Vec<Revocation>) {
        let mut events = Vec::new();
        for revocation in revocations {
            self.announced.fetch_add(1, Ordering::Relaxed);
            self.deliver(revocation.clone());
            events.push(FanoutEvent::Revoked(revocation));
        }
        // One message for all: ending a user's sessions waits for one confirmation round.
        self.publish(&events).await;
    }

    /// Tells this replica's session cache, then the other replicas, that a user's roles changed.
    async fn roles_changed(&self, user_id: &str) {
        self.live_sessions.forget_user(user_id);
        self.publish(&[FanoutEvent::RolesChanged {
            user_id: user_id.to_owned(),
        }])
        .await;
    }

    fn keys_changed(&self, jwks_json: String) {
        let _ = self.local.send(FeedEvent::KeysChanged(jwks_json));
    }

    async fn signing_key_revoked(&self, kid: String) {
        let _ = self.local.send(FeedEvent::KeyRevoked(kid.clone()));
        self.publish(&[FanoutEvent::SigningKeyRevoked { kid }])
            .await;
    }
}
