//! The storage port: the records the rules read and write, and the one interface every backend
//! implements (`store/` for SQLite and PostgreSQL). It speaks in records and the atomic
//! operations the rules need (for example [`Store::rotate_refresh`], a compare-and-set), never
//! in SQL; all instants are unix milliseconds.

use async_trait::async_trait;

use super::{
    FanoutEvent, ImportOutcome, Keyset, LapsedGeneration, ServiceClientRecord, ServiceRotation,
    UserFilter,
};
use crate::domain::{
    AuthError, Timestamp,
    model::{Revocation, SessionKind},
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write.
    #[error("conflict with an existing row")]
    Conflict,
    /// The database could not be reached or is overloaded; retrying may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

#[derive(Clone)]
pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub email_key: String,
    pub password_hash: String,
    /// Space-separated role names.
    pub roles: String,
    pub created_at: Timestamp,
    /// Set while an administrator has suspended the account.
    pub suspended_at: Option<Timestamp>,
}

/// The email key of a deleted account's tombstone starts with this: no address can (an email
/// key has no whitespace), so a tombstone never answers a lookup by email, and its address may
/// be used again.
pub const TOMBSTONE_KEY_PREFIX: &str = "deleted ";

impl UserRecord {
    /// Whether this is the tombstone of a deleted account (no email, hash or roles left).
    pub fn is_deleted(&self) -> bool {
        self.standing() == OwnerStanding::Deleted
    }

    pub fn standing(&self) -> OwnerStanding {
        OwnerStanding::of(&self.email_key, self.suspended_at.is_some())
    }
}

/// Whether an account may still hold sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerStanding {
    Active,
    Suspended,
    Deleted,
}

impl OwnerStanding {
    /// From the account's email key (a tombstone's starts with [`TOMBSTONE_KEY_PREFIX`]) and
    /// whether it is suspended.
    pub fn of(email_key: &str, suspended: bool) -> Self {
        if email_key.starts_with(TOMBSTONE_KEY_PREFIX) {
            Self::Deleted
        } else if suspended {
            Self::Suspended
        } else {
            Self::Active
        }
    }
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .field("suspended_at", &self.suspended_at)
            .finish_non_exhaustive()
    }
}

/// A session about to be created, with its first credential's hash.
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub kind: SessionKind,
    pub session_token_hash: Option<Vec<u8>>,
    pub refresh_token_hash: Option<Vec<u8>>,
    pub refresh_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub idle_timeout_ms: i64,
    pub expires_at: Timestamp,
    pub user_agent: String,
    pub peer_address: String,
    /// Its credentials serve the auth service's own management RPCs, not the apps.
    pub management: bool,
}

/// A session with its owner's current email and roles.
#[derive(Clone)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub roles: String,
    pub kind: SessionKind,
    pub session_token_hash: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub idle_timeout_ms: i64,
    pub expires_at: Timestamp,
    pub refresh_current_hash: Option<Vec<u8>>,
    pub refresh_previous_hash: Option<Vec<u8>>,
    pub refresh_rotated_at: Option<Timestamp>,
    pub refresh_expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub user_agent: String,
    pub peer_address: String,
    /// Its credentials serve the auth service's own management RPCs, not the apps.
    pub management: bool,
    /// The owner's address is verified (`users.email_verified_at`).
    pub email_verified: bool,
    /// The owner's account, read in the same statement as the session.
    pub owner: OwnerStanding,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("management", &self.management)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// Replace a session's live refresh token, if it is still `expected_current`. The session is
/// the one that issued `expected_current` (any token it ever issued finds it), so a caller that
/// holds only a presented token can rotate without reading the session first.
#[derive(Clone)]
pub struct RefreshRotation {
    pub expected_current: Vec<u8>,
    pub new_current: Vec<u8>,
    pub new_previous: Vec<u8>,
    pub rotated_at: Timestamp,
    /// When the new token expires, unless the session ends first: the store keeps the earlier of
    /// this and the session's absolute expiry.
    pub refresh_expires_at: Timestamp,
    pub now: Timestamp,
}

/// A session that a write just revoked (or that was revoked earlier, when re-read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedSession {
    pub session_id: String,
    pub user_id: String,
    pub revoked_at: Timestamp,
}

/// Why a session ended; stored for audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    Revoked,
    RefreshTokenReused,
    PasswordChanged,
    /// Pushed out by the per-user session cap.
    Evicted,
    /// The account was suspended by an administrator.
    Suspended,
    /// A service client's secret was replaced and its overlap is over.
    SecretRotated,
    /// The account was deleted by an administrator.
    Deleted,
    /// An administrator set a new password for the account.
    PasswordSet,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::Revoked => "revoked",
            RevokeReason::RefreshTokenReused => "refresh_token_reused",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::Evicted => "evicted",
            RevokeReason::Suspended => "suspended",
            RevokeReason::SecretRotated => "secret_rotated",
            RevokeReason::Deleted => "deleted",
            RevokeReason::PasswordSet => "password_set",
        }
    }
}

/// A change that makes remembered sessions or tokens stale, as the write that made it logged it
/// (in its own transaction): what replicas re-read, by `seq`, to learn of changes they may not
/// have heard of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedChange {
    /// Assigned by the database at insert; increasing, but not necessarily in commit order
    /// (PostgreSQL), and with holes where an insert was rolled back.
    pub seq: i64,
    pub event: FanoutEvent,
}

#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// PKCS#8 document of the Ed25519 key pair; `None` once erased (every token it signed has
    /// expired, it was revoked, or a later rotation superseded it before it signed). A key
    /// without it never signs and is never published.
    pub private_pkcs8: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub activates_at: Timestamp,
    pub retires_at: Option<Timestamp>,
    pub drop_after: Option<Timestamp>,
    /// Rotation order, assigned by the store on insert (one past every key before it): of two
    /// keys, the higher `seq` was asked for later and wins.
    pub seq: i64,
    /// Set when an administrator revoked the key as compromised.
    pub revoked_at: Option<Timestamp>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("seq", &self.seq)
            .field("activates_at", &self.activates_at)
            .field("revoked_at", &self.revoked_at)
            .field("erased", &self.private_pkcs8.is_none())
            .finish_non_exhaustive()
    }
}

/// A rotation, written atomically by [`Store::rotate_signing_key`].
pub struct KeyRotation<'a> {
    /// The new key (its `seq` is assigned by the store).
    pub successor: &'a SigningKeyRecord,
    pub now: Timestamp,
    /// When the keys it replaces leave the JWKS: the successor's activation plus the longest
    /// token lifetime.
    pub drop_after: Timestamp,
    /// A compromised key to revoke in the same write.
    pub revoke: Option<&'a str>,
}

/// What [`Store::rotate_signing_key`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRotationOutcome {
    Rotated,
    /// `revoke` named no key: nothing was written.
    UnknownKid,
    /// `revoke` named a key revoked before: nothing was written.
    AlreadyRevoked,
}

/// One row of [`Store::replace_private_keys`]: the private half of `kid` becomes `replacement`
/// if it is still `expected` (sealing at rest, `engine/keys_at_rest.rs`).
pub struct PrivateKeyReplacement {
    pub kid: String,
    pub expected: Vec<u8>,
    pub replacement: Vec<u8>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `Conflict` if the email key is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    async fn find_user_by_email_key(
        &self,
        email_key: &str,
    ) -> Result<Option<UserRecord>, StoreError>;
    async fn find_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces the user's password hash if it is still `expected` (a compare-and-set, so a
    /// hash upgrade or a second change cannot overwrite a change that won the race); false
    /// otherwise.
    async fn update_password_hash(
        &self,
        user_id: &str,
        expected: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Replaces the user's space-separated roles and logs the change; false if there is no such
    /// user.
    async fn set_user_roles(
        &self,
        user_id: &str,
        roles: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Marks the user suspended from `now` (keeping an earlier suspension's instant); false if
    /// there is no such user. Does not touch sessions: see `revoke_user_sessions`.
    async fn suspend_user(&self, user_id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Lifts a suspension; false if there is no such user.
    async fn reactivate_user(&self, user_id: &str) -> Result<bool, StoreError>;
    /// Accounts matching `filter` (never deleted ones nor service clients), in creation order
    /// `(created_at, id)` after `after`, at most `limit`.
    async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<&Keyset>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError>;
    /// Turns a live account into a tombstone (`deleted_at` set; email, hash and roles erased;
    /// the email key [`TOMBSTONE_KEY_PREFIX`] and the id); false if there is no such live
    /// account. Does not touch sessions: the
    /// `Revoker` ends them after this mark.
    async fn delete_user(&self, user_id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Inserts the accounts in ONE transaction, each skipped if its id or email key is taken
    /// (by an account before it or earlier in the batch); one outcome per account, in order.
    async fn import_users(&self, users: &[UserRecord]) -> Result<Vec<ImportOutcome>, StoreError>;

    /// Creates the session and records its first refresh token, if any.
    async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError>;
    /// Revokes the user's oldest live sessions beyond the newest `keep`.
    async fn evict_sessions_beyond(
        &self,
        user_id: &str,
        keep: u32,
        now: Timestamp,
    ) -> Result<Vec<RevokedSession>, StoreError>;
    async fn find_session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError>;
    async fn find_session_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// The session any refresh token ever issued for it belongs to (for reuse detection), read
    /// in one statement.
    async fn find_session_by_refresh_hash(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Compare-and-set of the live refresh token. It wins only while the session is live at
    /// `rotation.now` by [`SessionRecord::ensure_live`]'s rule (not revoked, before its idle and
    /// absolute ends), and returns the session as the rotation left it, with its owner read in
    /// the same statement; `None` if another rotation won the race, or the session was revoked
    /// or had ended. Written again after it landed, a rotation wins again (the new token is its
    /// own).
    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn touch_session(&self, session_id: &str, now: Timestamp) -> Result<(), StoreError>;
    /// The session, if it was live and is now revoked.
    async fn revoke_session(
        &self,
        session_id: &str,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<Option<RevokedSession>, StoreError>;
    /// Revokes every live session of the user except `keep`. Without `keep`, also records that
    /// all the user's sessions up to `now` ended (for verifiers that only see tokens).
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<RevokedSession>, StoreError>;
    /// Sessions neither revoked nor past their absolute expiry, across all users.
    async fn count_live_sessions(&self, now: Timestamp) -> Result<u64, StoreError>;
    /// Sessions revoked at or after `since`, oldest first.
    async fn revocations_since(&self, since: Timestamp) -> Result<Vec<RevokedSession>, StoreError>;
    /// Users whose sessions were all revoked at or after `since`: (user id, revoked before).
    async fn user_revocations_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError>;
    /// Changes logged with a `seq` above `after`, lowest first, at most `limit`. Every revoking
    /// write above (and `set_user_roles`) logs its changes in the same transaction.
    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<LoggedChange>, StoreError>;
    /// The changes logged under any of `seqs` (those that exist by now), lowest first.
    async fn changes_among(&self, seqs: &[i64]) -> Result<Vec<LoggedChange>, StoreError>;
    /// The highest `seq` logged so far (0 for none).
    async fn last_change_seq(&self) -> Result<i64, StoreError>;
    /// Live sessions (unrevoked, neither expired nor idle past their timeout), newest first
    /// `(created_at, id)`, those older than `before` only, at most `limit`.
    async fn list_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
        before: Option<&Keyset>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Atomically: revokes `rotation.revoke` (erasing its private half, out of the JWKS now) if
    /// given; supersedes every key still waiting to activate (erased, never signs: the last
    /// rotation asked for wins); schedules every other unretired key to retire when the
    /// successor activates and to leave the JWKS at `drop_after`; adds the successor.
    async fn rotate_signing_key(
        &self,
        rotation: &KeyRotation<'_>,
    ) -> Result<KeyRotationOutcome, StoreError>;
    /// Erases the private half of every key whose `drop_after` is before `now` (every token it
    /// signed has expired); returns how many.
    async fn erase_expired_signing_keys(&self, now: Timestamp) -> Result<u64, StoreError>;
    /// Replaces private halves all at once, in one transaction: false, with nothing written, if
    /// any row no longer holds its `expected` value.
    async fn replace_private_keys(
        &self,
        replacements: &[PrivateKeyReplacement],
    ) -> Result<bool, StoreError>;

    /// Creates a service client: its principal row (`user`, no password), the client row and
    /// the session of its first generation, in one transaction. `Conflict` if the id is taken.
    async fn insert_service_client(
        &self,
        user: &UserRecord,
        client: &ServiceClientRecord,
        generation: &NewSession,
    ) -> Result<(), StoreError>;
    async fn find_service_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ServiceClientRecord>, StoreError>;
    async fn find_service_client_by_mtls(
        &self,
        identity: &str,
    ) -> Result<Option<ServiceClientRecord>, StoreError>;
    /// Every service client, by id.
    async fn list_service_clients(&self) -> Result<Vec<ServiceClientRecord>, StoreError>;
    /// False if another rotation won the race (the client's rotation count moved on).
    async fn rotate_service_secret(
        &self,
        rotation: &ServiceRotation<'_>,
    ) -> Result<bool, StoreError>;
    /// Replaced generations whose overlap ended before `now` and whose session is still live.
    async fn lapsed_service_generations(
        &self,
        now: Timestamp,
    ) -> Result<Vec<LapsedGeneration>, StoreError>;

    /// Cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Deleting what no rule needs any more, where the backend supports it.
    fn retention(&self) -> Option<&dyn super::Retention> {
        None
    }

    /// Email verification and password-reset codes, where the backend keeps them.
    fn account_codes(&self) -> Option<&dyn super::AccountCodes> {
        None
    }
}

impl From<RevokedSession> for Revocation {
    fn from(session: RevokedSession) -> Self {
        Revocation::Session {
            session_id: session.session_id,
            user_id: session.user_id,
            revoked_at: session.revoked_at,
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => AuthError::Unavailable(detail),
            StoreError::Conflict => AuthError::Internal("unexpected uniqueness conflict".into()),
            StoreError::Other(detail) => AuthError::Internal(detail),
        }
    }
}
