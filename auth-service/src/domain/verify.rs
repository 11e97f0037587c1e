//! Verify: is this credential valid now, and whose is it. An access token is checked by its
//! signature (once per token: later checks hit the verified-token cache) and claims, *and* by its
//! session, which must still be live; a session token by its session alone. Sessions seen
//! recently are answered from the session cache, which every revocation reaches before it is
//! acknowledged.

use std::sync::Arc;

use auth_api::{
    access_token::{self, AccessClaims, Audience},
    verified_tokens::{VerifiedToken, VerifiedTokens},
};

use super::{
    AuthCore, AuthError, Timestamp,
    model::{Reach, SessionKind, Verified},
    opaque_token::OpaqueToken,
    ports::LiveSession,
    session,
};

impl AuthCore {
    /// Verifies an access token (for `audience`, or the apps' own when `None`) or a session
    /// token of an app session, for an app.
    pub async fn verify(
        &self,
        token: &str,
        audience: Option<&str>,
        now: Timestamp,
    ) -> Result<Verified, AuthError> {
        Ok(self
            .verify_with_session(token, Reach::App(audience), now)
            .await?
            .0)
    }

    /// The caller of a management RPC (sessions, password, admin): a live credential of a
    /// management session, never one the apps were given.
    pub async fn authenticate_manager(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Verified, AuthError> {
        Ok(self
            .verify_with_session(token, Reach::Management, now)
            .await?
            .0)
    }

    /// Verifies a credential for `reach`; also returns its session's absolute expiry.
    pub(super) async fn verify_with_session(
        &self,
        token: &str,
        reach: Reach<'_>,
        now: Timestamp,
    ) -> Result<(Verified, Timestamp), AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingCredential);
        }
        if OpaqueToken::looks_like(token) {
            let (verified, session_expires_at) = self.verify_session_token(token, now).await?;
            self.session_token_reaches(&verified, reach)?;
            return Ok((verified, session_expires_at));
        }
        let checked = self.decode_for(token, reach, now).await?;
        let claims = &checked.claims;
        // One hop only: what ExchangeToken or the gateway minted is never a subject again.
        if reach == Reach::Exchange && claims.exchanged == Some(true) {
            return Err(AuthError::TokenInvalid);
        }
        let session = self.live_session(&claims.sid, &claims.sub, now).await?;
        // Only a management session is ever minted tokens for the management audience.
        if claims.aud == self.policy.management_audience && !session.management {
            return Err(AuthError::TokenInvalid);
        }
        // A service token names a service's generation, a user's token a user's session.
        if claims.service.unwrap_or(false) != session.principal.service {
            return Err(AuthError::TokenInvalid);
        }
        let mut principal = session.principal.clone();
        principal.actors = claims.actors();
        let verified = Verified {
            principal,
            kind: SessionKind::Tokens,
            expires_at: Timestamp::from_unix_seconds(claims.exp),
            management: session.management,
            authenticated_at: session.authenticated_at,
        };
        Ok((verified, session.expires_at))
    }

    /// Whether a session token may be used where `reach` asks: an app session's for the apps'
    /// own audience (it names no other) and for exchange, a management session's for the
    /// management RPCs and for exchange.
    fn session_token_reaches(
        &self,
        verified: &Verified,
        reach: Reach<'_>,
    ) -> Result<(), AuthError> {
        match reach {
            Reach::App(audience) => {
                let own_audience = audience
                    .is_none_or(|audience| audience.is_empty() || audience == self.policy.audience);
                if verified.management || !own_audience {
                    return Err(AuthError::TokenInvalid);
                }
            }
            Reach::Management if !verified.management => {
                return Err(AuthError::ManagementCredentialRequired);
            }
            Reach::Management | Reach::Exchange => {}
        }
        Ok(())
    }

    /// An access token's signature and claims, for the audience `reach` admits.
    async fn decode_for(
        &self,
        token: &str,
        reach: Reach<'_>,
        now: Timestamp,
    ) -> Result<Arc<VerifiedToken>, AuthError> {
        let apps = self.policy.audience.as_str();
        let management = self.policy.management_audience.as_str();
        match reach {
            Reach::App(audience) => {
                let audience = audience
                    .filter(|audience| !audience.is_empty())
                    .unwrap_or(apps);
                // No app is the management audience: its tokens are for this service alone.
                if audience == management {
                    return Err(AuthError::TokenInvalid);
                }
                self.decode_access_token(token, Audience::Exactly(audience), now)
                    .await
            }
            Reach::Management => {
                match self
                    .decode_access_token(token, Audience::Exactly(management), now)
                    .await
                {
                    // Valid, but minted for someone else: say what is missing.
                    Err(AuthError::TokenInvalid)
                        if self
                            .decode_access_token(token, Audience::Any, now)
                            .await
                            .is_ok() =>
                    {
                        Err(AuthError::ManagementCredentialRequired)
                    }
                    decoded => decoded,
                }
            }
            Reach::Exchange => {
                match self
                    .decode_access_token(token, Audience::Exactly(apps), now)
                    .await
                {
                    Err(AuthError::TokenInvalid) => {
                        self.decode_access_token(token, Audience::Exactly(management), now)
                            .await
                    }
                    decoded => decoded,
                }
            }
        }
    }

    /// The live session `session_id` of `user_id` (of either kind: ExchangeToken mints access
    /// tokens for session-token sessions): from memory if this replica saw it recently, else
    /// from the store.
    pub(super) async fn live_session(
        &self,
        session_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Arc<LiveSession>, AuthError> {
        let cache = &self.sessions;
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

    pub(super) async fn decode_access_token(
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
            if self.keys.trusts(&verified.kid, now).await && audience.admits(&verified.claims.aud) {
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

    /// A caller's own access token of whichever audience (a service token as the bearer of
    /// `ExchangeToken`: its client may hold several), remembered like one checked for its
    /// audience so a repeat skips the signature. That is sound: `Any` differs from an exact
    /// audience in the `aud` check alone, and every hit checks `aud` (against what its caller
    /// asks), the times and the key's trust again.
    pub(super) async fn decode_callers_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Arc<VerifiedToken>, AuthError> {
        if token.len() > access_token::MAX_ACCESS_TOKEN_BYTES {
            return Err(AuthError::TokenInvalid);
        }
        let digest = VerifiedTokens::digest(token);
        if let Some(verified) = self.verified_tokens.get(&digest)
            && self.keys.trusts(&verified.kid, now).await
        {
            access_token::check_times(&verified.claims, self.rules.leeway, now.unix_seconds())?;
            return Ok(verified);
        }
        let verified = Arc::new(self.verify_signature(token, Audience::Any, now).await?);
        self.verified_tokens.insert(digest, Arc::clone(&verified));
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
        if !self
            .keys
            .check_signature(&signed.kid, signed.signing_input(), signed.signature(), now)
            .await?
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

    pub(super) async fn verify_session_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(Verified, Timestamp), AuthError> {
        let hash = OpaqueToken::hash_of(token)?;
        let cache = &self.sessions;
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
            expires_at: session::ends_at(now, session.idle_timeout_ms, session.expires_at),
            management: session.management,
            authenticated_at: session.authenticated_at,
        };
        Ok((verified, session.expires_at))
    }

    /// Checks an access token of the service's own audience by its signature and claims only,
    /// without reading its session: for the ext_authz gateway, whose decision cache applies the
    /// revocation feed itself (`engine/decision_cache.rs`).
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
}
