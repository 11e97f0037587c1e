//! Token exchange: a short-lived access token for another audience, tied to the session of the
//! credential presented (`ExchangeToken`), and the access token the ext_authz gateway forwards
//! upstream for a browser's session cookie.

use super::{
    AuthCore, AuthError, Timestamp, core::Grant, model::Verified, opaque_token::OpaqueToken,
};

impl AuthCore {
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
}
