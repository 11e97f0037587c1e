//! Token exchange: a short-lived access token for another audience, tied to the session of the
//! credential presented (`ExchangeToken`), and the access tokens the ext_authz gateway forwards
//! upstream in place of the client's own credential.
//!
//! What comes out of either can never reach the management RPCs (it is for an app's audience,
//! never the management one) nor be exchanged again (only a credential a login issued is an
//! exchange's subject): a token leaked by an upstream reaches no further than that upstream.

use auth_api::access_token::Audience;

use super::{
    AuthCore, AuthError, Timestamp,
    core::Grant,
    model::{CachedClaims, Reach, Verified},
    opaque_token::OpaqueToken,
    ports::ServiceClientRecord,
    service_admin::words,
    services::ServiceCredential,
};

impl AuthCore {
    /// Mints a short-lived access token for `audience`, tied to the subject token's session.
    /// With a calling service (`caller`), `audience` must be one of that client's exchange
    /// audiences and the token carries `act: {sub: <client id>}` (RFC 8693 s4.1). Without one,
    /// the deprecated fallback: `audience` must be in `AUTH_EXCHANGE_AUDIENCES` (none by default).
    pub async fn exchange_token(
        &self,
        subject_token: &str,
        audience: &str,
        caller: Option<ServiceCredential<'_>>,
        now: Timestamp,
    ) -> Result<(String, Timestamp), AuthError> {
        if audience.is_empty() {
            return Err(AuthError::InvalidArgument("audience is required"));
        }
        if audience == self.policy.management_audience {
            return Err(AuthError::AudienceNotAllowed);
        }
        let actor = match caller {
            Some(caller) => self.exchanging_service(caller, now).await?,
            None => None,
        };
        let allowed = match &actor {
            Some(client) => words(&client.exchange_audiences),
            None => self.policy.exchange_audiences.clone(),
        };
        if !allowed.iter().any(|allowed| allowed == audience) {
            return Err(AuthError::AudienceNotAllowed);
        }
        let (verified, session_expires_at) = self
            .verify_with_session(subject_token, Reach::Exchange, now)
            .await?;
        // A service acts for users, never for another service.
        if verified.principal.service {
            return Err(AuthError::TokenInvalid);
        }
        // Never later than the subject itself: exchanging a token for a fresh one of the same
        // reach, again and again, must not stretch a stolen token past its expiry.
        let mut grant = Grant::for_verified(&verified, session_expires_at.min(verified.expires_at));
        if let Some(client) = actor {
            grant.actors.insert(0, client.id);
        }
        self.mint_access_token(grant, Some(audience), now).await
    }

    /// The calling service of an exchange: a live service token (the call's bearer) or a
    /// bound client certificate. A certificate bound to no client is no service credential: the
    /// call is then an unauthenticated one (the deprecated fallback).
    async fn exchanging_service(
        &self,
        caller: ServiceCredential<'_>,
        now: Timestamp,
    ) -> Result<Option<ServiceClientRecord>, AuthError> {
        match caller {
            ServiceCredential::Token { token } => {
                Ok(Some(self.service_of_token(token, now).await?))
            }
            ServiceCredential::Certificate { .. } => {
                match self.authenticate_service(caller, now).await {
                    Ok(service) => Ok(Some(service.client)),
                    Err(AuthError::InvalidClientCredentials) => Ok(None),
                    Err(error) => Err(error),
                }
            }
            ServiceCredential::Secret { .. } => {
                Ok(Some(self.authenticate_service(caller, now).await?.client))
            }
        }
    }

    /// The client behind a service token: signature, times, `service: true`, and a live
    /// generation of an enabled client. A user's credential here is `SERVICE_CREDENTIAL_REQUIRED`.
    async fn service_of_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<ServiceClientRecord, AuthError> {
        if OpaqueToken::looks_like(token) {
            return Err(AuthError::ServiceCredentialRequired);
        }
        let checked = self.decode_access_token(token, Audience::Any, now).await?;
        let claims = &checked.claims;
        if claims.service != Some(true) {
            return Err(AuthError::ServiceCredentialRequired);
        }
        let session = self.live_session(&claims.sid, &claims.sub, now).await?;
        if !session.principal.service {
            return Err(AuthError::ServiceCredentialRequired);
        }
        let client = self
            .store
            .find_service_client(&claims.sub)
            .await?
            .ok_or(AuthError::TokenInvalid)?;
        if client.disabled_at.is_some() {
            return Err(AuthError::ServiceClientDisabled);
        }
        Ok(client)
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
            email_verified: claims.email_verified,
        };
        self.mint_access_token(grant, Some(self.policy.audience.as_str()), now)
            .await
    }
}
