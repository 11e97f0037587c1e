//! Verification inside another service: access tokens are checked in-process with the auth
//! service's published keys, and revocations arrive over the `WatchRevocations` feed, so a check
//! costs no network call and still rejects a revoked session within milliseconds.
//!
//! The feed is kept open in the background (reconnecting with jittered exponential backoff and
//! resuming from the last cursor, so no revocation is missed). If it has been down for longer than
//! [`LocalVerifierConfig::max_feed_outage`], every check fails closed with UNAVAILABLE (unless
//! configured otherwise): an unknown revocation must never let a token through.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock, Weak},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::DecodingKey;
use tokio::sync::watch;
use tonic::{Status, transport::Channel};

use crate::{
    access_token::{self, TokenRules},
    backoff::Backoff,
    layer::{Verifier, VerifyError},
    revoked_set::RevokedSet,
    v1::{
        GetJwksRequest, Principal, RevocationEvent, WatchRevocationsRequest,
        key_service_client::KeyServiceClient, revocation_event::Event,
    },
    verified_tokens::{VerifiedToken, VerifiedTokens},
};

/// How long a revocation of all of a user's sessions is kept: longer than any access token lives.
const USER_REVOCATION_KEPT: i64 = 24 * 3600;

/// The last second a revoked session must be remembered through, by a verifier that accepts a
/// token until `exp + leeway`. The server's `tokens_live_until` counts *its* leeway; a verifier
/// configured with a larger one accepts tokens longer, so it adds its own (over-counting is
/// harmless: only memory). Without `tokens_live_until`, for ever.
fn session_revocation_kept_until(tokens_live_until: Option<i64>, leeway: Duration) -> i64 {
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    tokens_live_until.map_or(i64::MAX, |until| {
        until.saturating_add(leeway).saturating_add(1)
    })
}

/// As [`session_revocation_kept_until`], for a revocation of every session of a user.
fn user_revocation_kept_until(revoked_before: i64, leeway: Duration) -> i64 {
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    revoked_before
        .saturating_add(USER_REVOCATION_KEPT)
        .saturating_add(leeway)
}

#[derive(Clone, Debug)]
pub struct LocalVerifierConfig {
    /// The audience this service accepts tokens for (`aud`).
    pub audience: String,
    /// The auth service's issuer (`iss`, `AUTH_ISSUER` there).
    pub issuer: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// How long the feed may be down before checks fail closed.
    pub max_feed_outage: Duration,
    /// Fail closed once the feed has been down for `max_feed_outage` (the safe default). When
    /// false, tokens keep being accepted on the last known revocations.
    pub fail_closed: bool,
    /// A feed silent for this long (no event, no heartbeat) is treated as broken.
    pub feed_silence_limit: Duration,
    /// At most one JWKS refetch per this interval when a token names an unknown key.
    pub jwks_refetch_interval: Duration,
    /// How long [`LocalVerifier::connect`] waits for the keys and the revocation snapshot.
    pub connect_timeout: Duration,
    /// How many verified tokens to remember, so a repeat check skips the signature (expiry and
    /// revocations are still checked every time); 0 turns it off.
    pub verified_cache_capacity: usize,
}

impl LocalVerifierConfig {
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            issuer: "auth".into(),
            leeway: Duration::from_secs(5),
            max_feed_outage: Duration::from_secs(30),
            fail_closed: true,
            feed_silence_limit: Duration::from_secs(15),
            jwks_refetch_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            verified_cache_capacity: 100_000,
        }
    }
}

/// Cheap to clone; all clones share one key set, one revocation list and one feed.
#[derive(Clone)]
pub struct LocalVerifier {
    shared: Arc<Shared>,
}

struct Shared {
    config: LocalVerifierConfig,
    rules: TokenRules,
    client: KeyServiceClient<Channel>,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    /// Keys revoked as compromised (`SigningKeyRevoked`): refused even if a JWKS lists them.
    revoked_keys: RwLock<HashSet<String>>,
    verified: VerifiedTokens,
    /// What the feed has revoked, for as long as it matters.
    revoked: RwLock<RevokedSet>,
    /// The snapshot of the current feed connection has been received.
    live: watch::Sender<bool>,
    /// When the feed last stopped being live (`None` while live).
    down_since: Mutex<Option<Instant>>,
    last_jwks_fetch: Mutex<Option<Instant>>,
    /// Counts applied feed events; lets callers wait for the feed to move.
    applied: watch::Sender<u64>,
    /// Dropped with the last verifier: the feed task sees its receiver close and hangs up.
    _alive: watch::Sender<()>,
}

impl LocalVerifier {
    /// Fetches the keys, opens the revocation feed and waits for its snapshot.
    pub async fn connect(channel: Channel, config: LocalVerifierConfig) -> Result<Self, Status> {
        let rules = TokenRules {
            issuer: config.issuer.clone(),
            leeway: config.leeway,
        };
        let (alive, verifier_dropped) = watch::channel(());
        let connect_timeout = config.connect_timeout;
        let verified = VerifiedTokens::new(config.verified_cache_capacity);
        let shared = Arc::new(Shared {
            config,
            rules,
            client: KeyServiceClient::new(channel),
            keys: RwLock::new(HashMap::new()),
            revoked_keys: RwLock::new(HashSet::new()),
            verified,
            revoked: RwLock::new(RevokedSet::default()),
            live: watch::channel(false).0,
            down_since: Mutex::new(Some(Instant::now())),
            last_jwks_fetch: Mutex::new(None),
            applied: watch::channel(0).0,
            _alive: alive,
        });
        shared.fetch_jwks().await?;
        let mut live = shared.live.subscribe();
        tokio::spawn(keep_feed_open(Arc::downgrade(&shared), verifier_dropped));
        tokio::time::timeout(connect_timeout, live.wait_for(|live| *live))
            .await
            .map_err(|_| {
                Status::unavailable("the revocation feed did not deliver its snapshot in time")
            })?
            .map_err(|_| Status::unavailable("the revocation feed closed"))?;
        Ok(Self { shared })
    }

    /// Verifies an access token: signature, claims, audience, and that its session has not been
    /// revoked. No network call unless the token names a key not seen yet; a token verified
    /// before skips the signature check (expiry and revocation are checked every time).
    pub async fn verify_token(&self, token: &str) -> Result<Principal, VerifyError> {
        self.shared.ensure_feed_trustworthy()?;
        if token.len() > access_token::MAX_ACCESS_TOKEN_BYTES {
            return Err(VerifyError::Invalid);
        }
        let now = unix_now();
        let digest = VerifiedTokens::digest(token);
        // A verdict counts only while the key that signed the token is still published.
        let cached = self
            .shared
            .verified
            .get(&digest)
            .filter(|verified| self.shared.key(&verified.kid).is_some());
        let verified = match cached {
            Some(verified) => {
                access_token::check_times(&verified.claims, self.shared.rules.leeway, now)?;
                verified
            }
            None => {
                // Taken before the key is looked up: a key set replaced meanwhile (a key
                // withdrawn) keeps this verdict out of the cache.
                let generation = self.shared.verified.generation();
                let verified = Arc::new(self.verify_signature(token, now).await?);
                self.shared.verified.insert_unless_cleared(
                    generation,
                    digest,
                    Arc::clone(&verified),
                );
                verified
            }
        };
        let claims = &verified.claims;
        // Checked on every call: a token verified before its key was revoked is refused too.
        if self.shared.key_is_revoked(&verified.kid) {
            return Err(VerifyError::Invalid);
        }
        if self.shared.is_revoked(&claims.sid, &claims.sub, claims.iat) {
            return Err(VerifyError::Revoked);
        }
        Ok(Principal {
            user_id: claims.sub.clone(),
            email: String::new(),
            roles: claims.roles.clone(),
            session_id: claims.sid.clone(),
            kind: crate::principal_kind(claims.service == Some(true)).into(),
            actors: claims.actors(),
            email_verified: claims.email_verified.unwrap_or(false),
        })
    }

    /// The first sight of a token: header, key, signature and claims.
    async fn verify_signature(&self, token: &str, now: i64) -> Result<VerifiedToken, VerifyError> {
        let kid = access_token::key_id(token)?;
        let key = match self.shared.key(&kid) {
            Some(key) => key,
            None => {
                // A key rotated in since the last JWKS: refetch, at most once per interval.
                if self.shared.may_refetch_jwks() {
                    let _ = self.shared.fetch_jwks().await;
                }
                self.shared.key(&kid).ok_or(VerifyError::Invalid)?
            }
        };
        let claims = access_token::verify(
            token,
            &key,
            &self.shared.rules,
            access_token::Audience::Exactly(&self.shared.config.audience),
            now,
        )?;
        Ok(VerifiedToken { kid, claims })
    }

    /// Whether the revocation feed is connected and its snapshot received.
    pub fn feed_is_live(&self) -> bool {
        *self.shared.live.borrow()
    }

    /// Resolves after the next feed event (revocation, key change or heartbeat) is applied.
    /// Counting starts when this is called, not when the future is first polled.
    pub fn next_feed_event(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut applied = self.shared.applied.subscribe();
        applied.mark_unchanged();
        async move {
            let _ = applied.changed().await;
        }
    }
}

impl Verifier for LocalVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, VerifyError> {
        self.verify_token(token).await
    }
}

impl Shared {
    fn key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    fn key_is_revoked(&self, kid: &str) -> bool {
        self.revoked_keys
            .read()
            .map(|revoked| revoked.contains(kid))
            // A poisoned lock means a panic mid-update: refuse rather than guess.
            .unwrap_or(true)
    }

    /// Refuses `kid` from now on, whatever JWKS arrives later.
    fn revoke_key(&self, kid: String) {
        if let Ok(mut keys) = self.keys.write() {
            keys.remove(&kid);
        }
        if let Ok(mut revoked) = self.revoked_keys.write() {
            revoked.insert(kid);
        }
        self.verified.clear();
    }

    fn may_refetch_jwks(&self) -> bool {
        let Ok(mut last) = self.last_jwks_fetch.lock() else {
            return false;
        };
        if last.is_some_and(|at| at.elapsed() < self.config.jwks_refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    async fn fetch_jwks(&self) -> Result<(), Status> {
        let jwks = self
            .client
            .clone()
            .get_jwks(GetJwksRequest {})
            .await?
            .into_inner()
            .jwks_json;
        self.replace_keys(&jwks);
        Ok(())
    }

    fn replace_keys(&self, jwks_json: &str) {
        let Ok(jwks) = serde_json::from_str::<serde_json::Value>(jwks_json) else {
            return;
        };
        let keys: HashMap<String, Arc<DecodingKey>> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(access_token::decoding_key_from_jwk)
            // A replica that has not reloaded yet may still list a revoked key.
            .filter(|(kid, _)| !self.key_is_revoked(kid))
            .map(|(kid, key)| (kid, Arc::new(key)))
            .collect();
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        // A key may have been withdrawn: tokens signed with it must not live on in the cache.
        self.verified.clear();
    }

    fn is_revoked(&self, session_id: &str, user_id: &str, issued_at: i64) -> bool {
        self.revoked
            .read()
            .map(|revoked| revoked.is_revoked(session_id, user_id, issued_at))
            // A poisoned lock means a panic mid-update: refuse rather than guess.
            .unwrap_or(true)
    }

    fn ensure_feed_trustworthy(&self) -> Result<(), VerifyError> {
        if !self.config.fail_closed {
            return Ok(());
        }
        let down_since = *self
            .down_since
            .lock()
            .map_err(|_| VerifyError::Unavailable)?;
        match down_since {
            Some(since) if since.elapsed() > self.config.max_feed_outage => {
                Err(VerifyError::Unavailable)
            }
            _ => Ok(()),
        }
    }

    fn set_live(&self, live: bool) {
        if let Ok(mut down_since) = self.down_since.lock() {
            if live {
                *down_since = None;
            } else if down_since.is_none() {
                *down_since = Some(Instant::now());
            }
        }
        self.live
            .send_if_modified(|current| std::mem::replace(current, live) != live);
    }

    fn apply(&self, event: RevocationEvent) {
        let now = unix_now();
        match event.event {
            Some(Event::SessionRevoked(revoked)) => {
                let until = session_revocation_kept_until(
                    revoked.tokens_live_until.map(|t| t.seconds),
                    self.config.leeway,
                );
                if let Ok(mut set) = self.revoked.write() {
                    set.revoke_session(&revoked.session_id, until);
                }
            }
            Some(Event::UserSessionsRevoked(revoked)) => {
                let before = revoked.revoked_before.map_or(i64::MAX, |t| t.seconds);
                if let Ok(mut set) = self.revoked.write() {
                    set.revoke_user(
                        &revoked.user_id,
                        before,
                        user_revocation_kept_until(before, self.config.leeway),
                    );
                }
            }
            Some(Event::KeysChanged(keys)) => self.replace_keys(&keys.jwks_json),
            Some(Event::SigningKeyRevoked(revoked)) => self.revoke_key(revoked.kid),
            Some(Event::SnapshotComplete(_)) => self.set_live(true),
            Some(Event::Heartbeat(_)) => self.forget_expired(now),
            None => {}
        }
        self.applied
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Drops revocations whose tokens have all expired: they can no longer matter.
    fn forget_expired(&self, now: i64) {
        if let Ok(mut set) = self.revoked.write() {
            set.forget_expired(now);
        }
    }
}

/// Keeps the feed open for as long as a verifier exists.
async fn keep_feed_open(shared: Weak<Shared>, mut verifier_dropped: watch::Receiver<()>) {
    let mut cursor = String::new();
    let mut backoff = Backoff::default();
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let silence_limit = strong.config.feed_silence_limit;
        let opened = strong
            .client
            .clone()
            .watch_revocations(WatchRevocationsRequest {
                after_cursor: cursor.clone(),
            })
            .await;
        drop(strong);
        if let Ok(response) = opened {
            let mut events = response.into_inner();
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout(silence_limit, events.message()) => next,
                    // Every verifier is gone: hang up now rather than at the next heartbeat.
                    _ = verifier_dropped.changed() => return,
                };
                let Ok(Ok(Some(event))) = next else { break };
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                if !event.cursor.is_empty() {
                    cursor.clone_from(&event.cursor);
                }
                strong.apply(event);
                backoff = Backoff::default();
            }
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.set_live(false);
        drop(strong);
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

fn unix_now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server (leeway 5 s) says a revoked session's tokens live until second 1_000; this
    /// verifier tolerates 60 s, so it accepts a token with `exp` 995 until second 1_055.
    #[test]
    fn a_verifier_with_more_leeway_than_the_server_remembers_revocations_until_its_tokens_expire() {
        let leeway = Duration::from_secs(60);
        let mut revoked = RevokedSet::default();
        revoked.revoke_session("s", session_revocation_kept_until(Some(1_000), leeway));
        revoked.revoke_user("u", 100, user_revocation_kept_until(100, leeway));
        let last_accepted_second = 995 + 60;
        revoked.forget_expired(last_accepted_second);
        assert!(revoked.is_revoked("s", "other", 0));
        let user_token_accepted_until = 100 + USER_REVOCATION_KEPT + 60;
        revoked.forget_expired(user_token_accepted_until);
        assert!(revoked.is_revoked("other", "u", 99));
        // Without an end from the server, never forgotten.
        assert_eq!(session_revocation_kept_until(None, leeway), i64::MAX);
    }
}
