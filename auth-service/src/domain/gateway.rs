//! The decisions behind Envoy's external authorization (`grpc/ext_authz.rs` is the transport):
//! may this HTTP request through the gateway, and as whom.
//!
//! Two kinds of caller:
//! - Services and apps send `authorization: Bearer <access token>`. It is checked against the
//!   revoked set ([`RevokedSetCheck`], `engine/decision_cache.rs`): no database round trip, and
//!   a revoked session is refused as soon as the revocation reaches this replica.
//! - Browsers hold only an opaque session token in an HttpOnly cookie. It is looked up in the
//!   store (it is opaque), and the upstream receives a short-lived access token minted for its
//!   session instead, so services only ever see JWTs. A session token sent as a bearer token is
//!   treated the same way, minus the CSRF rules below.
//!
//! Either way the upstream receives a token minted here (the apps' audience, the exchange
//! lifetime), never the client's own credential: what an upstream holds, or leaks from its logs,
//! cannot call the management RPCs, cannot be exchanged, and expires within minutes.
//!
//! A cookie is sent by the browser on its own, whoever wrote the page that caused the request, so
//! cookie-authenticated requests with unsafe methods must come from an allowed `Origin` (and carry
//! the CSRF header, when one is configured): OWASP CSRF Prevention Cheat Sheet, "Verifying Origin
//! With Standard Headers" and "Custom Request Headers"; RFC 9110 section 9.2.1 for safe methods.

use std::{collections::HashMap, sync::Arc};

use super::{
    AuthCore, AuthError, Timestamp, forwarded_tokens::ForwardedTokens, opaque_token::OpaqueToken,
    ports::RevokedSetCheck,
};

/// Methods that must not change state (RFC 9110 section 9.2.1); anything else is unsafe.
const SAFE_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS", "TRACE"];

/// The gateway's knobs (from configuration).
#[derive(Clone, Debug)]
pub struct GatewayPolicy {
    /// The cookie that carries a browser's session token.
    pub session_cookie_name: String,
    /// Origins (`scheme://host[:port]`) allowed to send cookie-authenticated unsafe requests;
    /// empty means only the request's own origin.
    pub allowed_origins: Vec<String>,
    /// A header that cookie-authenticated unsafe requests must carry (any non-empty value).
    pub csrf_header: Option<String>,
}

impl GatewayPolicy {
    /// Origins normalised for comparison, the CSRF header name lower-cased, empties dropped.
    fn normalized(self) -> Self {
        Self {
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|origin| normalize_origin(origin))
                .filter(|origin| !origin.is_empty())
                .collect(),
            csrf_header: self
                .csrf_header
                .map(|name| name.trim().to_ascii_lowercase())
                .filter(|name| !name.is_empty()),
            session_cookie_name: self.session_cookie_name,
        }
    }
}

/// The HTTP request being authorized, as the gateway describes it. Its `Debug` names the headers
/// without their values: they carry cookies and bearer tokens.
#[derive(Clone, Default)]
pub struct GatewayRequest {
    pub method: String,
    /// `http` or `https`, as the gateway received the request.
    pub scheme: String,
    /// The `Host` / `:authority` of the request.
    pub host: String,
    /// Header names lower-cased; repeated headers merged (cookies with `; `).
    pub headers: HashMap<String, String>,
}

impl std::fmt::Debug for GatewayRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("GatewayRequest")
            .field("method", &self.method)
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("header_names", &names)
            .finish()
    }
}

#[derive(Debug)]
pub enum Decision {
    Allow(Allowed),
    Deny(Denied),
}

/// Who the request is from, for the upstream. Its `Debug` never shows the minted token or the
/// forwarded cookies.
pub struct Allowed {
    pub user_id: String,
    pub session_id: String,
    pub roles: Vec<String>,
    /// An access token minted for the credential's session, to forward as
    /// `authorization: Bearer` in place of whatever the client sent.
    pub minted_access_token: String,
    /// For a cookie: the `Cookie` header to forward, without the session cookie (empty: remove
    /// the header), so upstream services never hold the long-lived session token.
    pub forwarded_cookie: Option<String>,
}

impl std::fmt::Debug for Allowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        f.debug_struct("Allowed")
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("roles", &self.roles)
            .field("minted_access_token", &"<redacted>")
            .field("forwarded_cookie", &redacted(&self.forwarded_cookie))
            .finish()
    }
}

#[derive(Debug)]
pub enum Denied {
    /// HTTP 401: no credential, or one that is not (or no longer) valid.
    Unauthenticated {
        reason: AuthError,
        /// Whether a credential was presented at all (RFC 6750 section 3.1: no error code
        /// otherwise).
        credential_presented: bool,
    },
    /// HTTP 403: a cookie-authenticated unsafe request that may be a cross-site forgery.
    Forbidden(CsrfFailure),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsrfFailure {
    /// No `Origin` header, or a different origin than allowed.
    OriginNotAllowed,
    /// The configured CSRF header is missing or empty.
    CsrfHeaderMissing,
}

impl CsrfFailure {
    /// Stable, for clients to branch on (like the `auth.v1` error reasons).
    pub fn reason(self) -> &'static str {
        match self {
            CsrfFailure::OriginNotAllowed => "ORIGIN_NOT_ALLOWED",
            CsrfFailure::CsrfHeaderMissing => "CSRF_HEADER_MISSING",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            CsrfFailure::OriginNotAllowed => {
                "a cookie-authenticated request with this method must come from an allowed origin"
            }
            CsrfFailure::CsrfHeaderMissing => {
                "a cookie-authenticated request with this method must carry the CSRF header"
            }
        }
    }
}

/// Which credential the request carries.
enum Credential<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
    /// The session cookie appears more than once with different values (a sibling subdomain may
    /// have set one: "cookie tossing"); neither is trusted.
    AmbiguousCookie,
}

pub struct Gateway {
    core: Arc<AuthCore>,
    revoked_set: Arc<dyn RevokedSetCheck>,
    policy: GatewayPolicy,
    forwarded: ForwardedTokens,
}

impl Gateway {
    pub fn new(
        core: Arc<AuthCore>,
        revoked_set: Arc<dyn RevokedSetCheck>,
        policy: GatewayPolicy,
    ) -> Self {
        Self {
            core,
            revoked_set,
            policy: policy.normalized(),
            forwarded: ForwardedTokens::default(),
        }
    }

    /// Decides on one request. `Err` only when the decision could not be made (the database is
    /// unreachable for a session token, an internal failure): the gateway then applies its own
    /// failure policy, which should be to deny.
    pub async fn check(
        &self,
        request: &GatewayRequest,
        now: Timestamp,
    ) -> Result<Decision, AuthError> {
        let outcome = match self.credential(request) {
            Credential::None => Err(AuthError::MissingCredential),
            Credential::AmbiguousCookie => Err(AuthError::TokenInvalid),
            Credential::Bearer(token) => {
                let allowed = if OpaqueToken::looks_like(token) {
                    self.session_token(token, now).await
                } else {
                    self.access_token(token, now).await
                };
                // A browser may send its session cookie along: it never goes upstream either.
                allowed.map(|allowed| Allowed {
                    forwarded_cookie: self.cookie_for_upstream(request),
                    ..allowed
                })
            }
            Credential::Cookie(token) => {
                if let Err(failure) = check_csrf(&self.policy, request) {
                    return Ok(Decision::Deny(Denied::Forbidden(failure)));
                }
                let forwarded_cookie = self.cookie_for_upstream(request);
                self.session_token(token, now).await.map(|allowed| Allowed {
                    forwarded_cookie,
                    ..allowed
                })
            }
        };
        match outcome {
            Ok(allowed) => Ok(Decision::Allow(allowed)),
            Err(error @ (AuthError::Unavailable(_) | AuthError::Internal(_))) => Err(error),
            Err(reason) => Ok(Decision::Deny(Denied::Unauthenticated {
                credential_presented: !matches!(reason, AuthError::MissingCredential),
                reason,
            })),
        }
    }

    /// The request's `Cookie` header without the session cookie (`None`: it sent none).
    fn cookie_for_upstream(&self, request: &GatewayRequest) -> Option<String> {
        request
            .headers
            .get("cookie")
            .map(|header| without_cookie(header, &self.policy.session_cookie_name))
    }

    async fn access_token(&self, token: &str, now: Timestamp) -> Result<Allowed, AuthError> {
        let claims = self.revoked_set.check_access_token(token, now).await?;
        let minted = match self.forwarded.reusable(token, now) {
            Some(minted) => minted,
            None => {
                let (minted, expires_at) = self.core.mint_for_access_token(&claims, now).await?;
                self.forwarded.remember(token, &minted, now, expires_at);
                minted
            }
        };
        Ok(Allowed {
            user_id: claims.user_id,
            session_id: claims.session_id,
            roles: claims.roles,
            minted_access_token: minted,
            forwarded_cookie: None,
        })
    }

    async fn session_token(&self, token: &str, now: Timestamp) -> Result<Allowed, AuthError> {
        let (verified, access_token, _expires_at) =
            self.core.mint_for_session_token(token, now).await?;
        Ok(Allowed {
            user_id: verified.principal.user_id,
            session_id: verified.principal.session_id,
            roles: verified.principal.roles,
            minted_access_token: access_token,
            forwarded_cookie: None,
        })
    }

    /// An `authorization: Bearer` header wins over the cookie: it is what the caller chose to
    /// send. Other schemes (say, Basic for the upstream) are not ours and are ignored.
    fn credential<'a>(&self, request: &'a GatewayRequest) -> Credential<'a> {
        if let Some(token) = request
            .headers
            .get("authorization")
            .and_then(|value| bearer_token(value))
        {
            return Credential::Bearer(token);
        }
        let cookie_header = request
            .headers
            .get("cookie")
            .map(String::as_str)
            .unwrap_or_default();
        let values = cookie_values(cookie_header, &self.policy.session_cookie_name);
        match values.split_first() {
            None => Credential::None,
            Some((first, others)) if others.iter().all(|other| other == first) => {
                Credential::Cookie(first)
            }
            Some(_) => Credential::AmbiguousCookie,
        }
    }
}

/// The CSRF rules for a cookie-authenticated request: nothing for safe methods; otherwise an
/// allowed `Origin`, and the CSRF header when one is configured.
fn check_csrf(policy: &GatewayPolicy, request: &GatewayRequest) -> Result<(), CsrfFailure> {
    if SAFE_METHODS.contains(&request.method.as_str()) {
        return Ok(());
    }
    let origin = request
        .headers
        .get("origin")
        .map(|origin| normalize_origin(origin))
        .filter(|origin| !origin.is_empty())
        .ok_or(CsrfFailure::OriginNotAllowed)?;
    let allowed = if policy.allowed_origins.is_empty() {
        origin == normalize_origin(&format!("{}://{}", request.scheme, request.host))
    } else {
        policy.allowed_origins.contains(&origin)
    };
    if !allowed {
        return Err(CsrfFailure::OriginNotAllowed);
    }
    if let Some(header) = &policy.csrf_header {
        let present = request
            .headers
            .get(header)
            .is_some_and(|value| !value.trim().is_empty());
        if !present {
            return Err(CsrfFailure::CsrfHeaderMissing);
        }
    }
    Ok(())
}

/// The token of an `authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The values of every cookie named `name` in a `Cookie` header (RFC 6265 section 5.4), with
/// optional double quotes removed.
fn cookie_values<'h>(header: &'h str, name: &str) -> Vec<&'h str> {
    header
        .split(';')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| {
                let value = value.trim();
                value
                    .strip_prefix('"')
                    .and_then(|inner| inner.strip_suffix('"'))
                    .unwrap_or(value)
            })
        })
        .collect()
}

/// A `Cookie` header without the cookies named `name`.
fn without_cookie(header: &str, name: &str) -> String {
    header
        .split(';')
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .split_once('=')
                    .is_none_or(|(key, _)| key.trim() != name)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `scheme://host[:port]`, lower-cased, without a trailing slash or the scheme's default port, so
/// equal origins compare equal (RFC 6454 section 6.2 serialises them this way).
fn normalize_origin(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    for (scheme, default_port) in [("https://", ":443"), ("http://", ":80")] {
        if origin.starts_with(scheme)
            && let Some(without_port) = origin.strip_suffix(default_port)
        {
            return without_port.to_owned();
        }
    }
    origin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed_origins: &[&str], csrf_header: Option<&str>) -> GatewayPolicy {
        GatewayPolicy {
            session_cookie_name: "auth_session".into(),
            allowed_origins: allowed_origins.iter().map(|o| (*o).to_owned()).collect(),
            csrf_header: csrf_header.map(str::to_owned),
        }
        .normalized()
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> GatewayRequest {
        GatewayRequest {
            method: method.into(),
            scheme: "https".into(),
            host: "app.example.com".into(),
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn debug_output_names_headers_but_shows_no_credential() {
        let request = request(
            "GET",
            &[
                ("authorization", "Bearer secret-jwt"),
                ("cookie", "sid=secret-cookie"),
            ],
        );
        let allowed = Allowed {
            user_id: "u1".into(),
            session_id: "s1".into(),
            roles: Vec::new(),
            minted_access_token: "secret-minted".into(),
            forwarded_cookie: Some("theme=secret-theme".into()),
        };
        let printed = format!("{request:?} {allowed:?}");
        assert!(
            printed.contains("authorization") && printed.contains("u1"),
            "{printed}"
        );
        assert!(!printed.contains("secret"), "{printed}");
    }

    #[test]
    fn bearer_tokens_are_found_case_insensitively_and_other_schemes_are_not_ours() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_may_be_quoted() {
        let header = "theme=dark; auth_session=abc; other_auth_session=x";
        assert_eq!(cookie_values(header, "auth_session"), ["abc"]);
        assert_eq!(
            cookie_values("auth_session=\"abc\"", "auth_session"),
            ["abc"]
        );
        assert!(cookie_values("", "auth_session").is_empty());
        assert_eq!(
            cookie_values("a=1; auth_session=x; auth_session=y", "auth_session"),
            ["x", "y"]
        );
        assert_eq!(
            without_cookie("theme=dark; auth_session=x;lang=en", "auth_session"),
            "theme=dark; lang=en"
        );
        assert_eq!(without_cookie("auth_session=x", "auth_session"), "");
    }

    #[test]
    fn origins_compare_without_case_trailing_slash_or_default_port() {
        assert_eq!(
            normalize_origin("HTTPS://App.Example.com:443/"),
            "https://app.example.com"
        );
        assert_eq!(normalize_origin("http://localhost:80"), "http://localhost");
        assert_eq!(
            normalize_origin("http://localhost:8080"),
            "http://localhost:8080"
        );
        assert_eq!(
            normalize_origin("https://a.example:80"),
            "https://a.example:80"
        );
        assert_eq!(normalize_origin("null"), "null");
    }

    #[test]
    fn unsafe_cookie_requests_need_the_own_origin_when_no_list_is_configured() {
        let own = policy(&[], None);
        assert_eq!(check_csrf(&own, &request("GET", &[])), Ok(()));
        assert_eq!(
            check_csrf(
                &own,
                &request("POST", &[("origin", "https://app.example.com")])
            ),
            Ok(())
        );
        for origin in ["https://evil.example", "http://app.example.com", "null"] {
            assert_eq!(
                check_csrf(&own, &request("POST", &[("origin", origin)])),
                Err(CsrfFailure::OriginNotAllowed),
                "{origin}"
            );
        }
        assert_eq!(
            check_csrf(&own, &request("DELETE", &[])),
            Err(CsrfFailure::OriginNotAllowed)
        );
        // Methods are case-sensitive: only the exact safe names are safe.
        assert_eq!(
            check_csrf(&own, &request("get", &[])),
            Err(CsrfFailure::OriginNotAllowed)
        );
    }

    #[test]
    fn a_configured_list_and_csrf_header_are_both_enforced() {
        let listed = policy(&["https://shop.example.com"], Some("x-csrf-token"));
        let from_shop = [
            ("origin", "https://shop.example.com"),
            ("x-csrf-token", "1"),
        ];
        assert_eq!(check_csrf(&listed, &request("PUT", &from_shop)), Ok(()));
        assert_eq!(
            check_csrf(
                &listed,
                &request(
                    "PUT",
                    &[("origin", "https://app.example.com"), ("x-csrf-token", "1")]
                )
            ),
            Err(CsrfFailure::OriginNotAllowed)
        );
        assert_eq!(
            check_csrf(
                &listed,
                &request("PATCH", &[("origin", "https://shop.example.com")])
            ),
            Err(CsrfFailure::CsrfHeaderMissing)
        );
    }
}
