//! A tower layer that authenticates every call to a tonic service with a [`Verifier`] and puts
//! the verified [`Principal`] into the request extensions.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{Code, Status, server::NamedService};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use crate::{ERROR_DOMAIN, v1::Principal};

/// Something that turns a bearer token into a principal: [`crate::LocalVerifier`] or
/// [`crate::RemoteVerifier`].
pub trait Verifier: Clone + Send + Sync + 'static {
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, VerifyError>> + Send;
}

/// Why a credential was refused, with the same reasons the auth service uses.
#[derive(Clone, Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no credential was presented")]
    Missing,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the session has been revoked")]
    Revoked,
    #[error("the caller lacks the required role")]
    MissingRole,
    /// The token was not presented by the required service (its `act` claim).
    #[error("the token does not come through the required service")]
    ActorNotAllowed,
    /// Revocations cannot be known (feed down for too long, or the auth service unreachable):
    /// failing closed.
    #[error("authentication is temporarily unavailable")]
    Unavailable,
    /// The auth service's own answer (RemoteVerifier).
    #[error("{}", .0.message())]
    Remote(Status),
}

impl VerifyError {
    pub fn to_status(&self) -> Status {
        let (code, reason) = match self {
            VerifyError::Missing => (Code::Unauthenticated, "CREDENTIAL_MISSING"),
            VerifyError::Invalid => (Code::Unauthenticated, "TOKEN_INVALID"),
            VerifyError::Expired => (Code::Unauthenticated, "TOKEN_EXPIRED"),
            VerifyError::Revoked => (Code::Unauthenticated, "SESSION_REVOKED"),
            VerifyError::MissingRole => (Code::PermissionDenied, "PERMISSION_DENIED"),
            VerifyError::ActorNotAllowed => (Code::PermissionDenied, "ACTOR_NOT_ALLOWED"),
            VerifyError::Unavailable => (Code::Unavailable, "AUTH_UNAVAILABLE"),
            VerifyError::Remote(status) => return status.clone(),
        };
        Status::with_error_details(
            code,
            self.to_string(),
            ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
        )
    }
}

impl From<crate::access_token::TokenError> for VerifyError {
    fn from(error: crate::access_token::TokenError) -> Self {
        match error {
            crate::access_token::TokenError::Invalid => VerifyError::Invalid,
            crate::access_token::TokenError::Expired => VerifyError::Expired,
        }
    }
}

/// The token of an `authorization: Bearer <token>` header, if any.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The principal [`AuthLayer`] verified for this request.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| VerifyError::Missing.to_status())
}

/// Authenticates every request to the wrapped service.
#[derive(Clone)]
pub struct AuthLayer<V> {
    verifier: V,
    required_role: Option<Arc<str>>,
    required_actor: Option<Arc<str>>,
}

impl<V: Verifier> AuthLayer<V> {
    pub fn new(verifier: V) -> Self {
        Self {
            verifier,
            required_role: None,
            required_actor: None,
        }
    }

    /// Also require this role (PERMISSION_DENIED without it).
    pub fn require_role(mut self, role: impl Into<Arc<str>>) -> Self {
        self.required_role = Some(role.into());
        self
    }

    /// Also require that the token was exchanged by this service: its current actor (RFC 8693
    /// `act.sub`, [`Principal::actors`]'s first) is `service` (PERMISSION_DENIED,
    /// `ACTOR_NOT_ALLOWED`, otherwise, also for a token its subject presents itself).
    pub fn require_actor(mut self, service: impl Into<Arc<str>>) -> Self {
        self.required_actor = Some(service.into());
        self
    }
}

/// What a principal must satisfy besides a valid credential.
fn authorize(
    principal: Principal,
    role: Option<&str>,
    actor: Option<&str>,
) -> Result<Principal, VerifyError> {
    if role.is_some_and(|role| !principal.roles.iter().any(|held| held == role)) {
        return Err(VerifyError::MissingRole);
    }
    if actor.is_some_and(|actor| principal.actors.first().map(String::as_str) != Some(actor)) {
        return Err(VerifyError::ActorNotAllowed);
    }
    Ok(principal)
}

impl<S, V: Clone> Layer<S> for AuthLayer<V> {
    type Service = Authenticated<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            verifier: self.verifier.clone(),
            required_role: self.required_role.clone(),
            required_actor: self.required_actor.clone(),
        }
    }
}

/// A service behind [`AuthLayer`]; keeps the wrapped service's gRPC name.
#[derive(Clone)]
pub struct Authenticated<S, V> {
    inner: S,
    verifier: V,
    required_role: Option<Arc<str>>,
    required_actor: Option<Arc<str>>,
}

impl<S: NamedService, V> NamedService for Authenticated<S, V> {
    const NAME: &'static str = S::NAME;
}

impl<S, V, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for Authenticated<S, V>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    V: Verifier,
    RequestBody: Send + 'static,
    ResponseBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<RequestBody>) -> Self::Future {
        // The clone is the one that was driven to readiness (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let token = bearer_token(request.headers()).map(str::to_owned);
        let verifier = self.verifier.clone();
        let required_role = self.required_role.clone();
        let required_actor = self.required_actor.clone();
        Box::pin(async move {
            let verified = match token {
                None => Err(VerifyError::Missing),
                Some(token) => verifier.verify(&token).await,
            };
            let authorized = verified.and_then(|principal| {
                authorize(
                    principal,
                    required_role.as_deref(),
                    required_actor.as_deref(),
                )
            });
            match authorized {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(error) => Ok(error.to_status().into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[&str], actors: &[&str]) -> Principal {
        Principal {
            user_id: "u1".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            actors: actors.iter().map(|a| (*a).to_owned()).collect(),
            ..Principal::default()
        }
    }

    #[test]
    fn a_required_actor_is_the_current_one_never_an_earlier_one_nor_absent() {
        let through =
            |actors: &[&str]| authorize(principal(&[], actors), None, Some("order-service"));
        assert!(through(&["order-service"]).is_ok());
        assert!(through(&["order-service", "gateway"]).is_ok());
        // The user's own token, or one exchanged by someone else, is refused.
        for actors in [
            &[][..],
            &["cart-service"],
            &["cart-service", "order-service"],
        ] {
            assert!(
                matches!(through(actors), Err(VerifyError::ActorNotAllowed)),
                "{actors:?}"
            );
        }
        assert!(matches!(
            authorize(
                principal(&[], &["order-service"]),
                Some("billing"),
                Some("order-service")
            ),
            Err(VerifyError::MissingRole)
        ));
        assert!(authorize(principal(&["billing"], &[]), Some("billing"), None).is_ok());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_required() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Basic abc"),
        );
        assert_eq!(bearer_token(&headers), None);
    }
}
