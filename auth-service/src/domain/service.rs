//! The use cases: register, log in, verify, refresh, log out, and manage one's sessions.
//!
//! One invariant holds throughout: a credential is valid only while its session is live. An
//! access token is a short-lived signed view of a session (`sid`), so `verify` checks the session
//! too; revoking the session therefore kills every credential of it at once.

use std::{sync::Arc, time::Duration};

use auth_api::{
    access_token::{self, AccessClaims, Audience, TokenRules},
    verified_tokens::{VerifiedToken, VerifiedTokens},
};

use super::{
    ADMIN_ROLE, AuthError, Timestamp,
    accounts::{Email, format_roles, parse_roles},
    keys::KeyManager,
    limits::{Attempt, LimitPolicy, Limiter, Limits, MemoryLimiter, Throttled},
    live_sessions::LiveSession,
    model::{Revocation, SessionKind},
    opaque_token::{OpaqueToken, TokenHash, new_id, new_token_id},
    password_policy::check_new_password,
    passwords::{MAX_PASSWORD_BYTES, PasswordHasher},
    ports::{
        NewSession, RefreshRotation, RevokeReason, SessionRecord, Store, StoreError, UserRecord,
    },
    revocations::RevocationHub,
    signatures::{CheckCounts, SignatureChecks},
};

/// A refresh that keeps losing compare-and-set races gives up after this many rounds; each lost
/// round means another rotation of the same session succeeded.
const MAX_ROTATION_ATTEMPTS: usize = 32;

/// The knobs of the service's behaviour (all from configuration).
#[derive(Clone, Debug)]
pub struct Policy {
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_idle_timeout: Duration,
    pub session_max_lifetime: Duration,
    pub refresh_reuse_grace: Duration,
    pub max_sessions_per_user: u32,
    pub allow_registration: bool,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Lifetime of a token minted by ExchangeToken (never longer than an access token's).
    pub exchange_token_ttl: Duration,
    /// Audiences ExchangeToken may mint for; empty means any.
    pub exchange_audiences: Vec<String>,
    /// Shortest new password, in characters (never below 8).
    pub password_min_chars: usize,
    /// Per-address throttle and per-account lockout.
    pub limits: LimitPolicy,
}

/// Who a verified credential belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub session_id: String,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == ADMIN_ROLE)
    }
}

#[derive(Clone, Debug)]
pub struct Verified {
    pub principal: Principal,
    pub kind: SessionKind,
    pub expires_at: Timestamp,
}

pub struct IssuedTokens {
    pub access_token: String,
    pub access_expires_at: Timestamp,
    pub refresh_token: String,
    pub refresh_expires_at: Timestamp,
}

pub enum Credential {
    Tokens(IssuedTokens),
    Session {
        token: String,
        expires_at: Timestamp,
    },
}

pub struct LoginOutcome {
    pub user_id: String,
    pub session_id: String,
    pub credential: Credential,
}

/// Where a login came from, recorded on the session.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub user_agent: String,
    pub peer_address: String,
}

pub struct AuthCore {
    policy: Policy,
    rules: TokenRules,
    store: Arc<dyn Store>,
    keys: Arc<KeyManager>,
    hasher: PasswordHasher,
    revocations: Arc<RevocationHub>,
    limits: Limits,
    /// Access tokens whose signature was verified, so a repeat check skips Ed25519 (`Verify`
    /// still checks the session every time, in the session cache or the store; ext_authz checks
    /// its revoked set).
    verified_tokens: VerifiedTokens,
    /// Ed25519 checks of first-seen access tokens, batched when they arrive together.
    signatures: Arc<SignatureChecks>,
}

/// Verified access tokens remembered per replica (about 200 bytes each).
const VERIFIED_TOKENS_KEPT: usize = 100_000;

impl AuthCore {
    pub fn new(
        policy: Policy,
        store: Arc<dyn Store>,
        keys: Arc<KeyManager>,
        hasher: PasswordHasher,
        revocations: Arc<RevocationHub>,
    ) -> Self {
        let rules = TokenRules {
            issuer: policy.issuer.clone(),
            leeway: policy.leeway,
        };
        // Counted in this process until `with_limiter` shares the counts (Redis).
        let limits = Limits::new(Arc::new(MemoryLimiter::new()), policy.limits);
        Self {
            policy,
            rules,
            store,
            keys,
            hasher,
            revocations,
            limits,
            verified_tokens: VerifiedTokens::new(VERIFIED_TOKENS_KEPT),
            signatures: SignatureChecks::new(
                std::thread::available_parallelism().map_or(1, |threads| threads.get()),
            ),
        }
    }

    /// Counts brute-force limits with `limiter` (shared by every replica) instead of in memory.
    pub fn with_limiter(mut self, limiter: Arc<dyn Limiter>) -> Self {
        self.limits = Limits::new(limiter, self.policy.limits);
        self
    }

    /// Counts a call of `rpc` from `peer` (`ip:port`) against the per-address budget.
    pub async fn throttle_address(
        &self,
        rpc: Throttled,
        peer: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        self.limits.throttle_address(rpc, peer, now).await
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// What the administration use cases (`admin.rs`) build on.
    pub(super) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(super) fn keys(&self) -> &Arc<KeyManager> {
        &self.keys
    }

    pub(super) fn revocations(&self) -> &Arc<RevocationHub> {
        &self.revocations
    }

    /// Password hashes waiting for a hashing slot (logins, registrations, password changes).
    pub fn hashing_queue_depth(&self) -> usize {
        self.hasher.queue_depth()
    }

    pub async fn register(
        &self,
        email: &str,
        password: String,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        if !self.policy.allow_registration {
            return Err(AuthError::RegistrationDisabled);
        }
        self.create_user(email, password, &[], now).await
    }

    /// Creates an account with the given roles (registration, and the admin CLI).
    pub async fn create_user(
        &self,
        email: &str,
        password: String,
        roles: &[String],
        now: Timestamp,
    ) -> Result<String, AuthError> {
        let email = Email::parse(email)?;
        check_new_password(&password, self.policy.password_min_chars)?;
        let roles = format_roles(roles)?;
        let user = UserRecord {
            id: new_id()?,
            email: email.address,
            email_key: email.key,
            password_hash: self.hasher.hash(password).await?,
            roles,
            created_at: now,
            suspended_at: None,
        };
        match self.store.insert_user(&user).await {
            Ok(()) => Ok(user.id),
            Err(StoreError::Conflict) => Err(AuthError::EmailTaken),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn login(
        &self,
        email: &str,
        password: String,
        kind: SessionKind,
        client: ClientInfo,
        now: Timestamp,
    ) -> Result<LoginOutcome, AuthError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::PasswordTooLong);
        }
        self.limits
            .throttle_address(Throttled::Login, &client.peer_address, now)
            .await?;
        // Shed at once, before any work; a shed login is not counted as a failure.
        if self.hasher.is_saturated() {
            return Err(AuthError::Overloaded {
                retry_after: super::passwords::SHED_RETRY_AFTER,
            });
        }
        let email_key = Email::lookup_key(email);
        // Something that cannot be an address names no account (and is never sent to the store,
        // where a NUL byte would be an error rather than a miss); it still pays the hash below.
        let user = match Email::parse(email) {
            Ok(_) => self.store.find_user_by_email_key(&email_key).await?,
            Err(_) => None,
        };
        // The hash check runs whether or not the account exists: same answer, same time.
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        // Kept only when the stored hash is to be upgraded after this login.
        let rehash_with = stored_hash
            .as_deref()
            .filter(|hash| self.hasher.needs_rehash(hash))
            .map(|_| password.clone());
        let matched = self.hasher.verify_or_shed(password, stored_hash).await? && user.is_some();
        // Settled atomically after the check (limits.rs): a locked account, known or not, gets
        // exactly the wrong-password answer after the same work, even for the right password.
        if let Attempt::Locked { .. } = self.limits.settle_login(&email_key, matched, now).await {
            return Err(AuthError::InvalidCredentials);
        }
        let user = match user {
            Some(user) if matched => user,
            _ => return Err(AuthError::InvalidCredentials),
        };
        if let Some(password) = rehash_with {
            self.upgrade_hash(&user.id, password).await;
        }
        // Only after the password is proven does a suspended account say so (admin.rs).
        if user.suspended_at.is_some() {
            return Err(AuthError::AccountSuspended);
        }
        let outcome = self.start_session(&user, kind, client, now).await?;
        self.end_if_suspended_meanwhile(&user.id, &outcome.session_id, now)
            .await?;
        Ok(outcome)
    }

    /// Replaces a hash made with older (weaker) argon2 parameters, after the password was
    /// proven. A failure only delays the upgrade to the next login.
    async fn upgrade_hash(&self, user_id: &str, password: String) {
        let result = match self.hasher.hash(password).await {
            Ok(hash) => self
                .store
                .update_password_hash(user_id, &hash)
                .await
                .map_err(AuthError::from),
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => tracing::info!(%user_id, "password hash upgraded to the current parameters"),
            Err(error) => tracing::warn!(%user_id, %error, "upgrading a password hash failed"),
        }
    }

    async fn start_session(
        &self,
        user: &UserRecord,
        kind: SessionKind,
        client: ClientInfo,
        now: Timestamp,
    ) -> Result<LoginOutcome, AuthError> {
        let session_id = new_id()?;
        let expires_at = now.plus(self.policy.session_max_lifetime);
        let credential_token = OpaqueToken::generate()?;
        let mut session = NewSession {
            id: session_id.clone(),
            user_id: user.id.clone(),
            kind,
            session_token_hash: None,
            refresh_token_hash: None,
            refresh_expires_at: None,
            created_at: now,
            idle_timeout_ms: 0,
            expires_at,
            user_agent: client.user_agent,
            peer_address: client.peer_address,
        };
        let credential = match kind {
            SessionKind::Tokens => {
                let refresh_expires_at = now.plus(self.policy.refresh_token_ttl).min(expires_at);
                session.idle_timeout_ms =
                    super::time::duration_millis(self.policy.refresh_token_ttl);
                session.refresh_token_hash = Some(credential_token.hash.0);
                session.refresh_expires_at = Some(refresh_expires_at);
                self.store.insert_session(&session).await?;
                let grant = Grant {
                    user_id: &user.id,
                    session_id: &session_id,
                    roles: parse_roles(&user.roles),
                    session_expires_at: expires_at,
                };
                let (access_token, access_expires_at) =
                    self.mint_access_token(grant, None, now).await?;
                Credential::Tokens(IssuedTokens {
                    access_token,
                    access_expires_at,
                    refresh_token: credential_token.text,
                    refresh_expires_at,
                })
            }
            SessionKind::Session => {
                session.idle_timeout_ms =
                    super::time::duration_millis(self.policy.session_idle_timeout);
                session.session_token_hash = Some(credential_token.hash.0);
                self.store.insert_session(&session).await?;
                Credential::Session {
                    token: credential_token.text,
                    expires_at,
                }
            }
        };
        let evicted = self
            .store
            .evict_sessions_beyond(&user.id, self.policy.max_sessions_per_user.max(1), now)
            .await?;
        if !evicted.is_empty() {
            tracing::info!(user_id = %user.id, evicted = evicted.len(), "session cap reached; oldest sessions ended");
            self.revocations
                .announce(evicted.into_iter().map(Revocation::from))
                .await;
        }
        Ok(LoginOutcome {
            user_id: user.id.clone(),
            session_id,
            credential,
        })
    }

    /// Signs an access token for the session in `grant`: for our own audience with the access
    /// token lifetime, or for `exchange_audience` with the (shorter) exchange lifetime.
    async fn mint_access_token(
        &self,
        grant: Grant<'_>,
        exchange_audience: Option<&str>,
        now: Timestamp,
    ) -> Result<(String, Timestamp), AuthError> {
        let (audience, lifetime) = match exchange_audience {
            Some(audience) => (
                audience,
                self.policy
                    .exchange_token_ttl
                    .min(self.policy.access_token_ttl),
            ),
            None => (self.policy.audience.as_str(), self.policy.access_token_ttl),
        };
        // A token never outlives its session.
        let expires_at = now.plus(lifetime).min(grant.session_expires_at);
        let claims = AccessClaims {
            iss: self.policy.issuer.clone(),
            sub: grant.user_id.to_owned(),
            aud: audience.to_owned(),
            sid: grant.session_id.to_owned(),
            iat: now.unix_seconds(),
            exp: expires_at.unix_seconds(),
            jti: new_token_id()?,
            roles: grant.roles,
            nbf: None,
        };
        let ring = self.keys.ring().await;
        let (kid, key) = ring.signing_key(now)?;
        let token = access_token::sign(&claims, kid, key)
            .map_err(|error| AuthError::Internal(format!("signing failed: {error}")))?;
        Ok((token, Timestamp::from_unix_seconds(claims.exp)))
    }

    /// Verifies an access token (for `audience`, or our own when `None`) or a session token.
    pub async fn verify(
        &self,
        token: &str,
        audience: Option<&str>,
        now: Timestamp,
    ) -> Result<Verified, AuthError> {
        Ok(self.verify_with_session(token, audience, now).await?.0)
    }

    /// Verifies a credential; also returns its session's absolute expiry.
    async fn verify_with_session(
        &self,
        token: &str,
        audience: Option<&str>,
        now: Timestamp,
    ) -> Result<(Verified, Timestamp), AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingCredential);
        }
        if OpaqueToken::looks_like(token) {
            return self.verify_session_token(token, now).await;
        }
        let audience = audience
            .filter(|audience| !audience.is_empty())
            .unwrap_or(&self.policy.audience);
        let checked = self
            .decode_access_token(token, Audience::Exactly(audience), now)
            .await?;
        let claims = &checked.claims;
        let session = self.live_session(&claims.sid, &claims.sub, now).await?;
        let verified = Verified {
            principal: session.principal.clone(),
            kind: SessionKind::Tokens,
            expires_at: Timestamp::from_unix_seconds(claims.exp),
        };
        Ok((verified, session.expires_at))
    }

    /// The live session `session_id` of `user_id` (of either kind: ExchangeToken mints access
    /// tokens for session-token sessions): from memory if this replica saw it recently, else
    /// from the store.
    async fn live_session(
        &self,
        session_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Arc<LiveSession>, AuthError> {
        let cache = self.revocations.live_sessions();
        if let Some(session) = cache.by_id(session_id, now)
            && session.principal.user_id == user_id
            && session.is_live(now)
        {
            return Ok(session);
        }
        let ticket = cache.ticket();
        let record = self
            .store
            .find_session(session_id)
            .await?
            .filter(|session| session.user_id == user_id)
            .ok_or(AuthError::TokenInvalid)?;
        record.ensure_live(now)?;
        let session = LiveSession::of(&record);
        if let Some(ticket) = ticket {
            cache.remember(ticket, session.clone(), None, now);
        }
        Ok(Arc::new(session))
    }

    async fn decode_access_token(
        &self,
        token: &str,
        audience: Audience<'_>,
        now: Timestamp,
    ) -> Result<Arc<VerifiedToken>, AuthError> {
        if token.len() > access_token::MAX_ACCESS_TOKEN_BYTES {
            return Err(AuthError::TokenInvalid);
        }
        let digest = VerifiedTokens::digest(token);
        if let Some(verified) = self.verified_tokens.get(&digest) {
            // The signature was checked once; what can change since is the time, the audience
            // asked for, and whether the signing key is still trusted.
            let key_trusted = self
                .keys
                .ring()
                .await
                .verification_key(&verified.kid, now)
                .is_some();
            if key_trusted && audience.admits(&verified.claims.aud) {
                access_token::check_times(&verified.claims, self.rules.leeway, now.unix_seconds())?;
                return Ok(verified);
            }
        }
        let verified = Arc::new(self.verify_signature(token, audience, now).await?);
        // Only a token checked against an audience: `Any` (logout) proves nothing about it.
        if matches!(audience, Audience::Exactly(_)) {
            self.verified_tokens.insert(digest, Arc::clone(&verified));
        }
        Ok(verified)
    }

    /// The first sight of an access token: header, key (reloaded once if unknown), signature,
    /// claims.
    async fn verify_signature(
        &self,
        token: &str,
        audience: Audience<'_>,
        now: Timestamp,
    ) -> Result<VerifiedToken, AuthError> {
        let signed = access_token::split(token)?;
        let mut ring = self.keys.ring().await;
        // A kid we do not know may be a key another replica just rotated in.
        if ring.verification_key(&signed.kid, now).is_none()
            && self.keys.reload_for_unknown_kid().await?
        {
            ring = self.keys.ring().await;
        }
        let key = ring
            .verification_key(&signed.kid, now)
            .ok_or(AuthError::TokenInvalid)?;
        if !self
            .signatures
            .verify(signed.signing_input(), signed.signature(), key)
            .await
        {
            return Err(AuthError::TokenInvalid);
        }
        let claims =
            signed.claims_once_signature_checked(&self.rules, audience, now.unix_seconds())?;
        Ok(VerifiedToken {
            kid: signed.kid,
            claims,
        })
    }

    /// Signatures checked, and in how many rounds (their ratio is the mean batch size).
    pub fn signature_counts(&self) -> CheckCounts {
        self.signatures.counts()
    }

    async fn verify_session_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(Verified, Timestamp), AuthError> {
        let hash = OpaqueToken::hash_of(token)?;
        let cache = self.revocations.live_sessions();
        let session = match cache.by_token_hash(&hash.0, now) {
            Some(session) if session.is_live(now) => {
                if session.activity_is_stale(now) {
                    self.store
                        .touch_session(&session.principal.session_id, now)
                        .await?;
                    cache.touched(&session.principal.session_id, now);
                }
                session
            }
            _ => {
                let ticket = cache.ticket();
                let record = self
                    .store
                    .find_session_by_token_hash(&hash.0)
                    .await?
                    .filter(|session| {
                        session
                            .session_token_hash
                            .as_deref()
                            .is_some_and(|stored| hash.matches(stored))
                    })
                    .ok_or(AuthError::TokenInvalid)?;
                record.ensure_live(now)?;
                let mut session = LiveSession::of(&record);
                if record.activity_is_stale(now) {
                    self.store.touch_session(&record.id, now).await?;
                    session.last_seen_at = now;
                }
                if let Some(ticket) = ticket {
                    cache.remember(ticket, session.clone(), Some(hash.0), now);
                }
                Arc::new(session)
            }
        };
        let verified = Verified {
            principal: session.principal.clone(),
            kind: SessionKind::Session,
            // This verification is activity, whether or not it was worth a write.
            expires_at: super::session::ends_at(now, session.idle_timeout_ms, session.expires_at),
        };
        Ok((verified, session.expires_at))
    }

    /// Mints a short-lived access token for `audience`, tied to the subject token's session.
    pub async fn exchange_token(
        &self,
        subject_token: &str,
        audience: &str,
        now: Timestamp,
    ) -> Result<(String, Timestamp), AuthError> {
        if audience.is_empty() {
            return Err(AuthError::InvalidArgument("audience is required"));
        }
        let allowed = &self.policy.exchange_audiences;
        if !allowed.is_empty() && !allowed.iter().any(|allowed| allowed == audience) {
            return Err(AuthError::AudienceNotAllowed);
        }
        let (verified, session_expires_at) =
            self.verify_with_session(subject_token, None, now).await?;
        // Never later than the subject itself: exchanging a token for a fresh one of the same
        // reach, again and again, must not stretch a stolen token past its expiry.
        let grant = Grant::for_verified(&verified, session_expires_at.min(verified.expires_at));
        self.mint_access_token(grant, Some(audience), now).await
    }

    /// Checks an access token of the service's own audience by its signature and claims only,
    /// without reading its session: for the ext_authz gateway, whose decision cache applies the
    /// revocation feed itself (`domain/decision_cache.rs`).
    pub async fn decode_own_access_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<AccessClaims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingCredential);
        }
        let checked = self
            .decode_access_token(token, Audience::Exactly(&self.policy.audience), now)
            .await?;
        Ok(checked.claims.clone())
    }

    /// Verifies a live session token (it counts as activity) and mints an access token for the
    /// service's own audience tied to its session, with the exchange lifetime: what the ext_authz
    /// gateway forwards upstream for a browser's session cookie.
    pub async fn mint_for_session_token(
        &self,
        session_token: &str,
        now: Timestamp,
    ) -> Result<(Verified, String, Timestamp), AuthError> {
        if session_token.is_empty() {
            return Err(AuthError::MissingCredential);
        }
        if !OpaqueToken::looks_like(session_token) {
            return Err(AuthError::TokenInvalid);
        }
        let (verified, session_expires_at) = self.verify_session_token(session_token, now).await?;
        let grant = Grant::for_verified(&verified, session_expires_at);
        let (token, expires_at) = self
            .mint_access_token(grant, Some(self.policy.audience.as_str()), now)
            .await?;
        Ok((verified, token, expires_at))
    }

    /// Rotates a refresh token: see the `Refresh` RPC in `proto/auth/v1/auth.proto` and
    /// RFC 9700 section 4.14.2 for the reuse rules.
    pub async fn refresh(
        &self,
        presented: &str,
        now: Timestamp,
    ) -> Result<IssuedTokens, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::MissingCredential);
        }
        let hash = OpaqueToken::hash_of(presented)?;
        let session_id = self
            .store
            .find_session_id_by_refresh_hash(&hash.0)
            .await?
            .ok_or(AuthError::TokenInvalid)?;
        for _ in 0..MAX_ROTATION_ATTEMPTS {
            let session = self
                .store
                .find_session(&session_id)
                .await?
                .ok_or(AuthError::TokenInvalid)?;
            session.ensure_live(now)?;
            self.end_if_suspended_meanwhile(&session.user_id, &session.id, now)
                .await?;
            let current = session
                .refresh_current_hash
                .clone()
                .ok_or(AuthError::TokenInvalid)?;
            let (new_previous, rotated_at) = if hash.matches(&current) {
                (hash.0.clone(), now)
            } else if self.is_graced_predecessor(&session, &hash, now) {
                // The client lost the response to its last refresh: issue again, and let the
                // pair it never received die. The window is not extended.
                (hash.0.clone(), session.refresh_rotated_at.unwrap_or(now))
            } else {
                self.revoke(&session.id, RevokeReason::RefreshTokenReused, now)
                    .await?;
                tracing::warn!(session_id = %session.id, user_id = %session.user_id,
                    "a spent refresh token was presented; session revoked");
                return Err(AuthError::RefreshTokenReused);
            };
            let next = OpaqueToken::generate()?;
            let refresh_expires_at = now
                .plus(self.policy.refresh_token_ttl)
                .min(session.expires_at);
            let rotation = RefreshRotation {
                session_id: session.id.clone(),
                expected_current: current,
                new_current: next.hash.0,
                new_previous,
                rotated_at,
                refresh_expires_at,
                now,
            };
            if self.store.rotate_refresh(&rotation).await? {
                let grant = Grant {
                    user_id: &session.user_id,
                    session_id: &session.id,
                    roles: parse_roles(&session.roles),
                    session_expires_at: session.expires_at,
                };
                let (access_token, access_expires_at) =
                    self.mint_access_token(grant, None, now).await?;
                return Ok(IssuedTokens {
                    access_token,
                    access_expires_at,
                    refresh_token: next.text,
                    refresh_expires_at,
                });
            }
            // Another refresh of this session won the race: decide again on fresh state.
        }
        Err(AuthError::Contended)
    }

    fn is_graced_predecessor(
        &self,
        session: &SessionRecord,
        hash: &TokenHash,
        now: Timestamp,
    ) -> bool {
        let grace = self.policy.refresh_reuse_grace;
        let is_predecessor = session
            .refresh_previous_hash
            .as_deref()
            .is_some_and(|previous| hash.matches(previous));
        let rotated_at = session
            .refresh_rotated_at
            .unwrap_or(Timestamp::from_millis(i64::MIN));
        !grace.is_zero() && is_predecessor && now.since(rotated_at) <= grace
    }

    /// Ends the session behind an access, refresh or session token. Ending an ended session is
    /// not an error; a token that is not ours is.
    pub async fn logout(&self, token: &str, now: Timestamp) -> Result<(), AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingCredential);
        }
        let session_id = if OpaqueToken::looks_like(token) {
            let hash = OpaqueToken::hash_of(token)?;
            match self.store.find_session_by_token_hash(&hash.0).await? {
                Some(session) => session.id,
                None => self
                    .store
                    .find_session_id_by_refresh_hash(&hash.0)
                    .await?
                    .ok_or(AuthError::TokenInvalid)?,
            }
        } else {
            // Any audience: an exchanged token may end its session too.
            self.decode_access_token(token, Audience::Any, now)
                .await?
                .claims
                .sid
                .clone()
        };
        self.revoke(&session_id, RevokeReason::Logout, now).await
    }

    /// Ends one session and announces it; ending an ended session does nothing.
    async fn revoke(
        &self,
        session_id: &str,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        if let Some(revoked) = self.store.revoke_session(session_id, reason, now).await? {
            self.revocations.announce([Revocation::from(revoked)]).await;
        }
        Ok(())
    }

    /// Ends a user's sessions but `keep`, and announces each (and, with none kept, the user).
    async fn revoke_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        let revoked = self
            .store
            .revoke_user_sessions(user_id, keep, reason, now)
            .await?;
        let count = u64::try_from(revoked.len()).unwrap_or(u64::MAX);
        let mut announcements: Vec<Revocation> =
            revoked.into_iter().map(Revocation::from).collect();
        if keep.is_none() {
            announcements.push(Revocation::User {
                user_id: user_id.to_owned(),
                revoked_before: now,
            });
        }
        self.revocations.announce(announcements).await;
        Ok(count)
    }

    /// Resolves the user a management call acts on: the caller, or anyone for an admin.
    fn target_user(caller: &Principal, user_id: &str) -> Result<String, AuthError> {
        if user_id.is_empty() || user_id == caller.user_id {
            Ok(caller.user_id.clone())
        } else if caller.is_admin() {
            if !super::opaque_token::is_identifier(user_id) {
                return Err(AuthError::UserNotFound);
            }
            Ok(user_id.to_owned())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    pub async fn list_sessions(
        &self,
        caller: &Principal,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, AuthError> {
        let target = Self::target_user(caller, user_id)?;
        Ok(self.store.list_sessions(&target, now).await?)
    }

    pub async fn revoke_session(
        &self,
        caller: &Principal,
        session_id: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        if session_id.is_empty() {
            return Err(AuthError::InvalidArgument("session_id is required"));
        }
        if !super::opaque_token::is_identifier(session_id) {
            return Err(AuthError::SessionNotFound);
        }
        let session = self
            .store
            .find_session(session_id)
            .await?
            .ok_or(AuthError::SessionNotFound)?;
        Self::target_user(caller, &session.user_id)?;
        self.revoke(session_id, RevokeReason::Revoked, now).await
    }

    pub async fn revoke_all_sessions(
        &self,
        caller: &Principal,
        user_id: &str,
        keep_current: bool,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        let target = Self::target_user(caller, user_id)?;
        let keep = (keep_current && target == caller.user_id).then_some(caller.session_id.as_str());
        self.revoke_user(&target, keep, RevokeReason::Revoked, now)
            .await
    }

    /// Changes the caller's password and ends their other sessions (whoever changed the password
    /// may be evicting an intruder).
    pub async fn change_password(
        &self,
        caller: &Principal,
        current_password: String,
        new_password: String,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        let user = self
            .store
            .find_user(&caller.user_id)
            .await?
            .ok_or(AuthError::TokenInvalid)?;
        if current_password.len() > MAX_PASSWORD_BYTES
            || !self
                .hasher
                .verify(current_password, Some(user.password_hash))
                .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        check_new_password(&new_password, self.policy.password_min_chars)?;
        let new_hash = self.hasher.hash(new_password).await?;
        self.store.update_password_hash(&user.id, &new_hash).await?;
        self.revoke_user(
            &user.id,
            Some(&caller.session_id),
            RevokeReason::PasswordChanged,
            now,
        )
        .await
    }

    pub async fn jwks_json(&self, now: Timestamp) -> String {
        self.keys.ring().await.jwks_json(now)
    }
}

/// Whose token is being minted, for which session.
struct Grant<'a> {
    user_id: &'a str,
    session_id: &'a str,
    roles: Vec<String>,
    session_expires_at: Timestamp,
}

impl<'a> Grant<'a> {
    /// A grant for the session behind a verified credential, capped at `expires_at`.
    fn for_verified(verified: &'a Verified, expires_at: Timestamp) -> Self {
        Self {
            user_id: &verified.principal.user_id,
            session_id: &verified.principal.session_id,
            roles: verified.principal.roles.clone(),
            session_expires_at: expires_at,
        }
    }
}
