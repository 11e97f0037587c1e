//! Services are principals too: a service client proves itself with a 256-bit secret (or a bound
//! mutual-TLS identity) and obtains short-lived service tokens (`IssueServiceToken`, the OAuth
//! client-credentials grant over gRPC); the administration of clients is `service_admin.rs`.
//!
//! **Revocation reuses sessions.** A client is backed by a principal row in `users` (no password,
//! no address: no login can reach it; `suspended_at` is "disabled") and each of its secrets by a
//! session of kind [`SessionKind::Service`], its *credential generation*: a service token's `sid`
//! names the generation of the secret that obtained it. So `Verify` checks a service token
//! exactly like a user's (signature, claims, then its session, from the session cache), and
//! ending a generation (a retired secret) or all of them (a disabled client) goes through the
//! [`super::revoker::Revoker`], the change log and the revocation feed, reaching every replica and
//! every `LocalVerifier` before the call answers. A rotation keeps the replaced generation live
//! until the overlap ends; tokens its secret obtains meanwhile expire by then, and the sweep
//! (`engine/service_secrets.rs`, every poll interval) ends it once lapsed.
//!
//! Secrets are random 256-bit values: a single SHA-256 is the right hash (no dictionary to
//! search), compared in constant time; an unknown client pays the same comparison.

use std::time::Duration;

use super::{
    AuthCore, AuthError, Timestamp,
    accounts::parse_roles,
    core::Grant,
    opaque_token::OpaqueToken,
    ports::{RevokeReason, ServiceClientRecord},
};

/// A generation lives until its secret is retired or the client disabled; its session row needs
/// an expiry all the same.
pub(super) const GENERATION_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How a service proves who it is.
#[derive(Clone, Copy)]
pub enum ServiceCredential<'a> {
    /// Its client id and secret.
    Secret { client_id: &'a str, secret: &'a str },
    /// The identities of the client certificate of the call's mutual-TLS connection (subject and
    /// URI SANs), one of which must be bound to a client.
    Certificate { identities: &'a [String] },
    /// A service token (the `authorization: Bearer` of a call a service makes on a user's
    /// behalf, `ExchangeToken`); not accepted by `IssueServiceToken`.
    Token { token: &'a str },
}

impl std::fmt::Debug for ServiceCredential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceCredential::Secret { client_id, .. } => f
                .debug_struct("Secret")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            ServiceCredential::Certificate { identities } => f
                .debug_struct("Certificate")
                .field("identities", identities)
                .finish(),
            ServiceCredential::Token { .. } => f.debug_struct("Token").finish_non_exhaustive(),
        }
    }
}

/// A service that proved who it is, and the generation its credential belongs to.
#[derive(Clone, Debug)]
pub struct AuthenticatedService {
    pub client: ServiceClientRecord,
    pub generation: String,
    /// The end of the overlap when the credential is a replaced secret.
    pub valid_until: Option<Timestamp>,
}

impl AuthCore {
    /// Checks a service's credential: the secret (current, or the replaced one within its
    /// overlap) or a bound certificate identity. A disabled client is told so only after its
    /// credential was proven.
    pub async fn authenticate_service(
        &self,
        credential: ServiceCredential<'_>,
        now: Timestamp,
    ) -> Result<AuthenticatedService, AuthError> {
        let authenticated = match credential {
            ServiceCredential::Secret { client_id, secret } => {
                self.check_secret(client_id, secret, now).await?
            }
            ServiceCredential::Certificate { identities } => {
                self.check_certificate(identities).await?
            }
            ServiceCredential::Token { .. } => return Err(AuthError::InvalidClientCredentials),
        };
        if authenticated.client.disabled_at.is_some() {
            return Err(AuthError::ServiceClientDisabled);
        }
        Ok(authenticated)
    }

    async fn check_secret(
        &self,
        client_id: &str,
        secret: &str,
        now: Timestamp,
    ) -> Result<AuthenticatedService, AuthError> {
        if client_id.is_empty() || secret.is_empty() {
            return Err(AuthError::InvalidClientCredentials);
        }
        let presented =
            OpaqueToken::hash_of(secret).map_err(|_| AuthError::InvalidClientCredentials)?;
        let client = if super::opaque_token::is_identifier(client_id) {
            self.store.find_service_client(client_id).await?
        } else {
            None
        };
        // The same comparison whether or not the client exists.
        let Some(client) = client else {
            let _ = presented.matches(&[0; 32]);
            return Err(AuthError::InvalidClientCredentials);
        };
        let current = presented.matches(&client.secret_hash);
        let previous = client
            .previous_secret_hash
            .as_deref()
            .is_some_and(|stored| presented.matches(stored));
        if current {
            let generation = client.generation.clone();
            return Ok(AuthenticatedService {
                client,
                generation,
                valid_until: None,
            });
        }
        match (
            previous,
            &client.previous_generation,
            client.previous_valid_until,
        ) {
            (true, Some(generation), Some(until)) if now < until => Ok(AuthenticatedService {
                generation: generation.clone(),
                valid_until: Some(until),
                client,
            }),
            _ => Err(AuthError::InvalidClientCredentials),
        }
    }

    async fn check_certificate(
        &self,
        identities: &[String],
    ) -> Result<AuthenticatedService, AuthError> {
        for identity in identities.iter().filter(|identity| !identity.is_empty()) {
            if let Some(client) = self.store.find_service_client_by_mtls(identity).await? {
                let generation = client.generation.clone();
                return Ok(AuthenticatedService {
                    client,
                    generation,
                    valid_until: None,
                });
            }
        }
        Err(AuthError::InvalidClientCredentials)
    }

    /// The client-credentials grant: a short-lived access token for `audience` (one of the
    /// client's own), with `sub` = the client id, `service: true`, and `sid` = its generation.
    pub async fn issue_service_token(
        &self,
        credential: ServiceCredential<'_>,
        audience: &str,
        now: Timestamp,
    ) -> Result<(String, Timestamp), AuthError> {
        let service = self.authenticate_service(credential, now).await?;
        if audience.is_empty() {
            return Err(AuthError::InvalidArgument("audience is required"));
        }
        let allowed = parse_roles(&service.client.audiences);
        if audience == self.policy.management_audience || !allowed.iter().any(|a| a == audience) {
            return Err(AuthError::AudienceNotAllowed);
        }
        let client_id = service.client.id.as_str();
        let session = self
            .live_session(&service.generation, client_id, now)
            .await?;
        let mut expires_at = session.expires_at;
        if let Some(until) = service.valid_until {
            // A replaced secret's tokens end with its overlap.
            expires_at = expires_at.min(until);
        }
        let grant = Grant {
            user_id: client_id,
            session_id: &service.generation,
            roles: session.principal.roles.clone(),
            session_expires_at: expires_at,
            management: false,
            authenticated_at: now,
            service: true,
            actors: Vec::new(),
            email_verified: false,
        };
        self.mint_access_token(grant, Some(audience), now).await
    }

    /// Ends every replaced generation whose overlap is over (announced like any revocation);
    /// returns how many. Run by every replica each poll interval: ending is idempotent.
    pub async fn end_lapsed_service_generations(&self, now: Timestamp) -> Result<usize, AuthError> {
        let lapsed = self.store.lapsed_service_generations(now).await?;
        let mut ended = 0;
        for generation in &lapsed {
            if self
                .revoker
                .end_session(&generation.session_id, RevokeReason::SecretRotated, now)
                .await?
            {
                tracing::info!(client_id = %generation.client_id, "a rotated-out client secret's overlap ended");
                ended += 1;
            }
        }
        Ok(ended)
    }
}
