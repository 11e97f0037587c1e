//! Token exchange: a short-lived access token for another audience, tied to the session of the
//! credential presented (`ExchangeToken`), and the access tokens the ext_authz gateway forwards
//! upstream in place of the client's own credential.
//!
//! What comes out of either can never reach the management RPCs (it is for an app's audience,
//! never the management one) nor be exchanged again (only a credential a login issued is an
//! exchange's subject): a token leaked by an upstream reaches no further than that upstream.

use super::{
    AuthCore, AuthError, Timestamp,
    core::Grant,
    model::{CachedClaims, Reach, Verified},
    opaque_token::OpaqueToken,
};

impl AuthCore {
    /// Mints a short-lived access token for `audience`, tied to the subject token's session.
    /// `audience` must be one of `AUTH_EXCHANGE_AUDIENCES` (none by default).
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
        if audience == self.policy.management_audience
            || !allowed.iter().any(|allowed| allowed == audience)
        {
            return Err(AuthError::AudienceNotAllowed);
        }
        let (verified, session_expires_at) = self
            .verify_with_session(subject_token, Reach::Exchange, now)
            .await?;
        // Never later than the subject itself: exchanging a token for a fresh one of the same
        // reach, again and again, must not stretch a stolen token past its expiry.
        let grant = Grant::for_verified(&verified, session_expires_at.min(verified.expires_at));
        self.mint_access_token(grant, Some(audience), now).await
    }

    /// Verifies a live session token of an app session (it counts as activity) and mints an
    /// access token for the apps' audience tied to its session, with the exchange lifetime: what
    /// the ext_authz gateway forwards upstream for a browser's session cookie.
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
        let (verified, session_expires_at) = self
            .verify_with_session(session_token, Reach::App(None), now)
            .await?;
        let grant = Grant::for_verified(&verified, session_expires_at);
        let (token, expires_at) = self
            .mint_access_token(grant, Some(self.policy.audience.as_str()), now)
            .await?;
        Ok((verified, token, expires_at))
    }

    /// Mints the access token the gateway forwards for a client's access token (already checked
    /// against the revoked set): the apps' audience, the exchange lifetime, never past the
    /// client's token.
    pub async fn mint_for_access_token(
        &self,
        claims: &CachedClaims,
        now: Timestamp,
    ) -> Result<(String, Timestamp), AuthError> {
        let grant = Grant {
            user_id: &claims.user_id,
            session_id: &claims.session_id,
            roles: claims.roles.clone(),
            session_expires_at: Timestamp::from_unix_seconds(claims.expires_at),
            management: false,
            authenticated_at: Timestamp::from_unix_seconds(
                claims.authenticated_at.unwrap_or(claims.issued_at),
            ),
            service: false,
            actors: Vec::new(),
        };
        self.mint_access_token(grant, Some(self.policy.audience.as_str()), now)
            .await
    }
}
