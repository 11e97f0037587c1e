//! The core the use cases share: its ports, its policy, and minting an access token. Each use
//! case is a file of its own (`login.rs`, `verify.rs`, `refresh.rs`, `sessions.rs`,
//! `exchange.rs`, `admin.rs`), adding its methods to [`AuthCore`].
//!
//! One invariant holds throughout: a credential is valid only while its session is live. An
//! access token is a short-lived signed view of a session (`sid`), so `verify` checks the session
//! too; revoking the session (through the [`Revoker`], the only way) kills every credential of it
//! at once.

use std::sync::Arc;

use auth_api::{
    access_token::{AccessClaims, Actor, TokenRules},
    verified_tokens::VerifiedTokens,
};

use super::{
    AuthError, Timestamp,
    audit::AuditTrail,
    limits::{Limiter, Limits, MemoryLimiter, Throttled},
    model::Verified,
    opaque_token::new_token_id,
    policy::Policy,
    ports::{PasswordHashing, RevocationNews, SessionCache, SigningKeys, Store},
    revoker::Revoker,
    seen_clients::SeenClients,
};

/// Verified access tokens remembered per replica (about 200 bytes each).
const VERIFIED_TOKENS_KEPT: usize = 100_000;

/// The machinery the rules run on (`engine/` implements each).
pub struct Machinery {
    pub keys: Arc<dyn SigningKeys>,
    pub hasher: Arc<dyn PasswordHashing>,
    pub sessions: Arc<dyn SessionCache>,
    pub news: Arc<dyn RevocationNews>,
}

pub struct AuthCore {
    pub(super) policy: Policy,
    pub(super) rules: TokenRules,
    pub(super) store: Arc<dyn Store>,
    pub(super) keys: Arc<dyn SigningKeys>,
    pub(super) hasher: Arc<dyn PasswordHashing>,
    /// Live sessions this replica saw recently, so `Verify` need not read them again.
    pub(super) sessions: Arc<dyn SessionCache>,
    pub(super) news: Arc<dyn RevocationNews>,
    /// Every session that ends, ends through it.
    pub(super) revoker: Revoker,
    pub(super) limits: Limits,
    /// Access tokens whose signature was verified, so a repeat check skips Ed25519 (`Verify`
    /// still checks the session every time, in the session cache or the store; ext_authz checks
    /// its revoked set).
    pub(super) verified_tokens: VerifiedTokens,
    /// Every administrative call, logged and counted (`audit.rs`).
    audit: Arc<AuditTrail>,
    /// Email verification and password reset (`recovery.rs`); off until `with_accounts`.
    pub(super) accounts: Option<super::recovery::Accounts>,
    /// Service client records exchanges read recently (`seen_clients.rs`).
    pub(super) seen_clients: SeenClients,
}

impl AuthCore {
    pub fn new(policy: Policy, store: Arc<dyn Store>, machinery: Machinery) -> Self {
        let rules = TokenRules {
            issuer: policy.issuer.clone(),
            leeway: policy.leeway,
        };
        // Counted in this process until `with_limiter` shares the counts (Redis).
        let limits = Limits::new(Arc::new(MemoryLimiter::new()), policy.limits);
        Self {
            policy,
            rules,
            revoker: Revoker::new(store.clone(), machinery.news.clone()),
            store,
            keys: machinery.keys,
            hasher: machinery.hasher,
            sessions: machinery.sessions,
            news: machinery.news,
            limits,
            verified_tokens: VerifiedTokens::new(VERIFIED_TOKENS_KEPT),
            audit: Arc::new(AuditTrail::default()),
            accounts: None,
            seen_clients: SeenClients::default(),
        }
    }

    /// Counts brute-force limits with `limiter` (shared by every replica) instead of in memory.
    pub fn with_limiter(mut self, limiter: Arc<dyn Limiter>) -> Self {
        self.limits = Limits::new(limiter, self.policy.limits);
        self
    }

    /// Counts a call of `rpc` from `client` against its network's budget.
    pub async fn throttle_address(
        &self,
        rpc: Throttled,
        client: Option<std::net::IpAddr>,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        self.limits.throttle_address(rpc, client, now).await
    }

    /// The audit trail of administrative calls (the metrics read its counts).
    pub fn audit_trail(&self) -> Arc<AuditTrail> {
        self.audit.clone()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub async fn jwks_json(&self, now: Timestamp) -> String {
        self.keys.jwks_json(now).await
    }

    /// Every signing key revoked as compromised.
    pub async fn revoked_signing_keys(&self) -> Vec<String> {
        self.keys.revoked_kids().await
    }

    /// Signs an access token for the session in `grant`: for its session's own audience (the
    /// apps', or the management audience for a management session) with the access token
    /// lifetime, or for `exchange_audience` with the (shorter) exchange lifetime.
    pub(super) async fn mint_access_token(
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
            None if grant.management => (
                self.policy.management_audience.as_str(),
                self.policy.access_token_ttl,
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
            auth_time: Some(grant.authenticated_at.unix_seconds()),
            exchanged: exchange_audience.map(|_| true),
            service: grant.service.then_some(true),
            act: Actor::from_chain(&grant.actors),
            // OpenID Connect's claim; absent from service tokens.
            email_verified: (!grant.service).then_some(grant.email_verified),
        };
        let token = self.keys.sign(&claims, now).await?;
        Ok((token, Timestamp::from_unix_seconds(claims.exp)))
    }
}

/// Whose token is being minted, for which session.
pub(super) struct Grant<'a> {
    pub(super) user_id: &'a str,
    pub(super) session_id: &'a str,
    pub(super) roles: Vec<String>,
    pub(super) session_expires_at: Timestamp,
    /// A management session's: its own tokens are for the management audience.
    pub(super) management: bool,
    /// The session's login (`auth_time`).
    pub(super) authenticated_at: Timestamp,
    /// A service client's token (`services.rs`), not a user's.
    pub(super) service: bool,
    /// The actor chain (`act`), current actor first; empty unless delegated.
    pub(super) actors: Vec<String>,
    /// The user's address is verified (the `email_verified` claim).
    pub(super) email_verified: bool,
}

impl<'a> Grant<'a> {
    /// A grant for the session behind a verified credential, capped at `expires_at`.
    pub(super) fn for_verified(verified: &'a Verified, expires_at: Timestamp) -> Self {
        Self {
            user_id: &verified.principal.user_id,
            session_id: &verified.principal.session_id,
            roles: verified.principal.roles.clone(),
            session_expires_at: expires_at,
            management: verified.management,
            authenticated_at: verified.authenticated_at,
            service: verified.principal.service,
            actors: verified.principal.actors.clone(),
            email_verified: verified.principal.email_verified,
        }
    }
}
