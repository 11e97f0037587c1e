//! The ext_authz decision cache: what lets a gateway check an access token with no database
//! round trip, yet never allow a revoked session.
//!
//! Two parts. The *claims cache* maps a verified access token (by its SHA-256) to the claims a
//! decision needs; it is bounded (oldest entries go first) and an entry is useless once its token
//! has expired. The *revoked set* holds the sessions (and users) revoked within the last access
//! token lifetime, fed by [`RevocationHub`]: every revocation this replica makes, and those other
//! replicas make (Redis pub/sub, or the database re-read every `AUTH_REVOCATION_POLL_INTERVAL`
//! while Redis is down). A session not in the revoked set is trusted for access tokens, as
//! [`auth_api::LocalVerifier`] does: its tokens expire within the access token lifetime anyway.
//!
//! Signatures are checked against the in-memory key ring (`AuthCore::decode_own_access_token`).
//! Before each decision the feed is drained synchronously, so a revocation announced on this
//! replica before the check began is always seen, whatever the background task is doing.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use auth_api::access_token::{AccessClaims, MAX_ACCESS_TOKEN_BYTES};
use aws_lc_rs::digest;
use tokio::{
    sync::broadcast::{self, error::RecvError, error::TryRecvError},
    task::JoinHandle,
};

use super::{
    AuthCore, AuthError, Timestamp,
    revocations::{CLOCK_MARGIN, FeedEvent, Revocation, RevocationHub},
};

/// Verified tokens kept at most: about 200 bytes each, so some 20 MB when full.
pub const CLAIMS_CACHE_CAPACITY: usize = 100_000;
/// How often expired cache entries and revocations that can no longer matter are dropped.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// What a decision needs from a verified access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedClaims {
    pub user_id: String,
    pub session_id: String,
    pub roles: Vec<String>,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// `exp`, unix seconds.
    pub expires_at: i64,
}

impl From<AccessClaims> for CachedClaims {
    fn from(claims: AccessClaims) -> Self {
        Self {
            user_id: claims.sub,
            session_id: claims.sid,
            roles: claims.roles,
            issued_at: claims.iat,
            expires_at: claims.exp,
        }
    }
}

type TokenKey = [u8; 32];

pub struct DecisionCache {
    core: Arc<AuthCore>,
    hub: Arc<RevocationHub>,
    leeway_seconds: i64,
    claims: Mutex<ClaimsCache>,
    revoked: RwLock<RevokedSet>,
    /// This cache's subscription to the hub, drained before every decision.
    feed: Mutex<broadcast::Receiver<FeedEvent>>,
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
        // Subscribe before reading the snapshot, so nothing falls between the two.
        let feed = hub.subscribe();
        let wake = hub.subscribe();
        let recorded = hub.recorded_since(None, now).await?;
        let leeway = core.policy().leeway;
        let cache = Arc::new(Self {
            core,
            hub,
            leeway_seconds: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
            claims: Mutex::new(ClaimsCache::new(CLAIMS_CACHE_CAPACITY)),
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
        if token.len() > MAX_ACCESS_TOKEN_BYTES {
            return Err(AuthError::TokenInvalid);
        }
        self.catch_up(now).await?;
        let key = token_key(token);
        let cached = self
            .claims
            .lock()
            .ok()
            .and_then(|cache| cache.get(&key).cloned());
        let claims = match cached {
            Some(claims) => {
                if claims.expires_at.saturating_add(self.leeway_seconds) <= now.unix_seconds() {
                    return Err(AuthError::TokenExpired);
                }
                claims
            }
            None => {
                let claims =
                    CachedClaims::from(self.core.decode_own_access_token(token, now).await?);
                if let Ok(mut cache) = self.claims.lock() {
                    cache.insert(key, claims.clone());
                }
                claims
            }
        };
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
            match feed.try_recv() {
                Ok(FeedEvent::Revoked(revocation)) => announced.push(revocation),
                Ok(FeedEvent::KeysChanged(_)) => {}
                Err(TryRecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "decision cache fell behind the revocation feed; re-reading"
                    );
                    let cursor = self.revoked.read().map_err(|_| poisoned())?.cursor;
                    let mut reread = self.reread.lock().map_err(|_| poisoned())?;
                    reread.lags = reread.lags.wrapping_add(1);
                    reread.from = Some(reread.from.map_or(cursor, |from| from.min(cursor)));
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
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
                let forget_after = self
                    .hub
                    .tokens_live_until(revocation.at())
                    .plus(CLOCK_MARGIN);
                revoked.apply(revocation, forget_after);
            }
        }
    }

    fn forget_expired(&self, now: Timestamp) {
        if let Ok(mut claims) = self.claims.lock() {
            claims.forget_expired(now.unix_seconds(), self.leeway_seconds);
        }
        if let Ok(mut revoked) = self.revoked.write() {
            revoked.forget_expired(now);
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

fn poisoned() -> AuthError {
    AuthError::Internal("decision cache lock poisoned (a panic mid-update)".into())
}

fn token_key(token: &str) -> TokenKey {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    key
}

/// Verified claims by token, bounded: when full, the oldest insertion goes (tokens are issued
/// with one lifetime, so that is also about the first to expire).
struct ClaimsCache {
    capacity: usize,
    entries: HashMap<TokenKey, CachedClaims>,
    order: VecDeque<TokenKey>,
}

impl ClaimsCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, key: &TokenKey) -> Option<&CachedClaims> {
        self.entries.get(key)
    }

    fn insert(&mut self, key: TokenKey, claims: CachedClaims) {
        if self.entries.contains_key(&key) {
            return;
        }
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, claims);
        self.order.push_back(key);
    }

    fn forget_expired(&mut self, now_seconds: i64, leeway_seconds: i64) {
        self.entries
            .retain(|_, claims| claims.expires_at.saturating_add(leeway_seconds) > now_seconds);
        let entries = &self.entries;
        self.order.retain(|key| entries.contains_key(key));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Revocations whose sessions' access tokens may still be unexpired.
#[derive(Default)]
struct RevokedSet {
    /// Revoked session id -> when the entry may be forgotten.
    sessions: HashMap<String, Timestamp>,
    /// User id -> (tokens issued before this unix second are revoked, when it may be forgotten).
    users: HashMap<String, (i64, Timestamp)>,
    /// The newest revocation applied: where a re-read after falling behind starts.
    cursor: Option<Timestamp>,
}

impl RevokedSet {
    fn apply(&mut self, revocation: &Revocation, forget_after: Timestamp) {
        match revocation {
            Revocation::Session { session_id, .. } => {
                let entry = self
                    .sessions
                    .entry(session_id.clone())
                    .or_insert(forget_after);
                *entry = (*entry).max(forget_after);
            }
            Revocation::User {
                user_id,
                revoked_before,
            } => {
                let before = revoked_before.unix_seconds();
                let entry = self
                    .users
                    .entry(user_id.clone())
                    .or_insert((before, forget_after));
                *entry = (entry.0.max(before), entry.1.max(forget_after));
            }
        }
        self.cursor = Some(
            self.cursor
                .map_or(revocation.at(), |c| c.max(revocation.at())),
        );
    }

    /// The same rule as `auth_api::LocalVerifier`: the session was revoked, or all of the user's
    /// sessions were, after the token was issued.
    fn is_revoked(&self, session_id: &str, user_id: &str, issued_at: i64) -> bool {
        self.sessions.contains_key(session_id)
            || self
                .users
                .get(user_id)
                .is_some_and(|(before, _)| issued_at < *before)
    }

    fn forget_expired(&mut self, now: Timestamp) {
        self.sessions.retain(|_, forget_after| *forget_after > now);
        self.users
            .retain(|_, (_, forget_after)| *forget_after > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(session: &str, expires_at: i64) -> CachedClaims {
        CachedClaims {
            user_id: "user".into(),
            session_id: session.into(),
            roles: vec![],
            issued_at: expires_at - 900,
            expires_at,
        }
    }

    #[test]
    fn the_claims_cache_is_bounded_and_drops_the_oldest_first() {
        let mut cache = ClaimsCache::new(2);
        cache.insert(token_key("a"), claims("a", 100));
        cache.insert(token_key("b"), claims("b", 100));
        cache.insert(token_key("a"), claims("a", 100));
        cache.insert(token_key("c"), claims("c", 100));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&token_key("a")).is_none());
        assert!(cache.get(&token_key("b")).is_some());
        assert!(cache.get(&token_key("c")).is_some());
    }

    #[test]
    fn expired_entries_are_swept_with_the_leeway() {
        let mut cache = ClaimsCache::new(10);
        cache.insert(token_key("old"), claims("old", 100));
        cache.insert(token_key("new"), claims("new", 200));
        cache.forget_expired(104, 5);
        assert_eq!(cache.len(), 2);
        cache.forget_expired(105, 5);
        assert!(cache.get(&token_key("old")).is_none());
        assert!(cache.get(&token_key("new")).is_some());
        assert_eq!(cache.order.len(), 1);
    }

    #[test]
    fn revoked_sessions_and_users_are_refused_until_their_tokens_cannot_be_live() {
        let mut revoked = RevokedSet::default();
        let until = Timestamp::from_millis(1_000_000);
        revoked.apply(
            &Revocation::Session {
                session_id: "s1".into(),
                user_id: "u1".into(),
                revoked_at: Timestamp::from_millis(10_000),
            },
            until,
        );
        revoked.apply(
            &Revocation::User {
                user_id: "u2".into(),
                revoked_before: Timestamp::from_millis(20_500),
            },
            until,
        );
        assert!(revoked.is_revoked("s1", "u1", 0));
        assert!(!revoked.is_revoked("s2", "u1", 0));
        // Issued before the user's revocation (second 20): refused; from second 20 on: accepted.
        assert!(revoked.is_revoked("s3", "u2", 19));
        assert!(!revoked.is_revoked("s3", "u2", 20));
        assert_eq!(revoked.cursor, Some(Timestamp::from_millis(20_500)));

        revoked.forget_expired(until.minus(Duration::from_millis(1)));
        assert!(revoked.is_revoked("s1", "u1", 0));
        revoked.forget_expired(until);
        assert!(!revoked.is_revoked("s1", "u1", 0));
        assert!(!revoked.is_revoked("s3", "u2", 19));
    }
}
