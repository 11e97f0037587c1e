//! The ports the machinery in `engine/` implements: password hashing, signing keys and
//! signature checks, the session cache, the revocation news and the gateway's revoked set. The
//! rules call these; how they are made fast (threads, batches, caches, broadcast) is not theirs
//! to know.

use std::sync::Arc;

use async_trait::async_trait;
use auth_api::access_token::AccessClaims;

use crate::domain::{
    AuthError, Timestamp,
    model::{CachedClaims, Principal, Revocation, SessionKind},
};

/// argon2id off the async runtime, with a bounded queue. A password *check* is only ever offered
/// through [`PasswordHashing::verify_or_shed`]: no caller can make one wait in an unbounded
/// queue, or keep every slot busy for the others.
#[async_trait]
pub trait PasswordHashing: Send + Sync {
    /// A PHC string with a fresh salt; waits for a hashing slot (a password already proven, or
    /// an administrator's).
    async fn hash(&self, password: String) -> Result<String, AuthError>;
    /// As [`PasswordHashing::hash`], but refused with `Overloaded` at once when the queue is full
    /// (anonymous registration).
    async fn hash_or_shed(&self, password: String) -> Result<String, AuthError>;
    /// Whether `password` matches `stored` (with none, a dummy hash is checked: same work,
    /// always false); refused with `Overloaded` at once when the queue is full.
    async fn verify_or_shed(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, AuthError>;
    /// Whether `stored` was made with weaker parameters than the current ones, or another
    /// algorithm (an imported bcrypt hash): replaced after the next successful login.
    fn needs_rehash(&self, stored: &str) -> bool;
    /// Whether a hash brought from another application (`ImportUsers`) can be verified: a bcrypt
    /// or argon2 PHC string of sane cost; else why not (never repeating the hash).
    fn importable(&self, stored: &str) -> Result<(), &'static str>;
    /// `Overloaded` when the queue is full, so a caller sheds before doing any work.
    fn ensure_capacity(&self) -> Result<(), AuthError>;
    /// Hashes waiting for a slot.
    fn queue_depth(&self) -> usize;
}

/// The signing keys: which one signs, which are trusted, and the checks of signatures.
#[async_trait]
pub trait SigningKeys: Send + Sync {
    /// Signs `claims` with the key that signs at `now`.
    async fn sign(&self, claims: &AccessClaims, now: Timestamp) -> Result<String, AuthError>;
    /// Whether a token signed by `kid` may still be accepted at `now`.
    async fn trusts(&self, kid: &str, now: Timestamp) -> bool;
    /// Whether `signature` over `signing_input` is valid for the trusted key `kid`. An unknown
    /// `kid` may be a key another replica just published: the keys are reloaded (at most once a
    /// second) before it is refused.
    async fn check_signature(
        &self,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8; 64],
        now: Timestamp,
    ) -> Result<bool, AuthError>;
    /// The public keys, as a JWKS document.
    async fn jwks_json(&self, now: Timestamp) -> String;
    /// Publishes a new key that signs from `now + activation_delay`; the others retire then and
    /// leave the JWKS `token_lifetime` later. A key still waiting from an earlier rotation never
    /// signs: the last rotation asked for wins. Returns its `kid`.
    async fn rotate(
        &self,
        now: Timestamp,
        activation_delay: std::time::Duration,
        token_lifetime: std::time::Duration,
    ) -> Result<String, AuthError>;
    /// Distrusts a compromised key at once: out of the JWKS, tokens it signed refused
    /// (`SigningKeyRevoked`), its private half erased, and a new key signing from `now` (the
    /// others leave the JWKS `token_lifetime` later). Returns the new key's `kid`, or `None` if
    /// `kid` was revoked before (nothing changes); `SigningKeyNotFound` if it is unknown.
    async fn revoke(
        &self,
        kid: &str,
        now: Timestamp,
        token_lifetime: std::time::Duration,
    ) -> Result<Option<String>, AuthError>;
    /// Every key revoked as compromised (the revocation feed's snapshot carries them).
    async fn revoked_kids(&self) -> Vec<String>;
}

/// What `Verify` needs of a live session (its rules are in `domain/session.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSession {
    pub principal: Principal,
    pub kind: SessionKind,
    /// A management session (`Login` with `management`): its credentials serve the
    /// management RPCs, never the apps.
    pub management: bool,
    /// The login that started it: the `auth_time` of its access tokens.
    pub authenticated_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub idle_timeout_ms: i64,
    /// The absolute expiry.
    pub expires_at: Timestamp,
}

/// Taken before a database read and handed back with its result: see [`SessionCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheTicket(pub u64);

/// Live sessions remembered by this replica. It may only ever say "live" when the database
/// would: every revocation reaches it before the revocation is acknowledged.
pub trait SessionCache: Send + Sync {
    fn by_id(&self, session_id: &str, now: Timestamp) -> Option<Arc<LiveSession>>;
    fn by_token_hash(&self, hash: &[u8], now: Timestamp) -> Option<Arc<LiveSession>>;
    /// `None` while the cache may not be used.
    fn ticket(&self) -> Option<CacheTicket>;
    /// Remembers a session just read and found live, unless something was invalidated since
    /// `ticket` was taken (the read may predate that invalidation's commit).
    fn remember(
        &self,
        ticket: CacheTicket,
        session: LiveSession,
        token_hash: Option<Vec<u8>>,
        now: Timestamp,
    );
    /// Records activity the database was just told of.
    fn touched(&self, session_id: &str, at: Timestamp);
}

/// Spreads what changed to every cache and feed, on this replica and the others.
#[async_trait]
pub trait RevocationNews: Send + Sync {
    /// Returns once this replica's caches and feeds know, and the other replicas have confirmed
    /// (or a bounded wait has passed: they re-read the database within a poll interval).
    async fn announce(&self, revocations: Vec<Revocation>);
    /// Sessions remembered with the user's old roles are forgotten, here and elsewhere.
    async fn roles_changed(&self, user_id: &str);
    /// The key set changed: feeds carry the new JWKS.
    fn keys_changed(&self, jwks_json: String);
    /// A signing key was revoked as compromised: this replica's feeds tell local verifiers to
    /// refuse its tokens at once, whatever JWKS they hold; the other replicas distrust it and
    /// re-read their keys (confirmed like a revocation).
    async fn signing_key_revoked(&self, kid: String);
}

/// The gateway's check of an access token of our own audience against the revoked set, without
/// a database read.
#[async_trait]
pub trait RevokedSetCheck: Send + Sync {
    async fn check_access_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<CachedClaims, AuthError>;
}
