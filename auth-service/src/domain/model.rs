//! The types the use cases exchange with each other and with the transport.

use serde::{Deserialize, Serialize};

use auth_api::access_token::AccessClaims;

use super::{ADMIN_ROLE, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// Access token + rotating refresh token.
    Tokens,
    /// One opaque session token.
    Session,
    /// A service client's credential generation (`services.rs`): the session its secret's
    /// service tokens name in `sid`. It has no credential of its own.
    Service,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Tokens => "tokens",
            SessionKind::Session => "session",
            SessionKind::Service => "service",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "tokens" => Some(SessionKind::Tokens),
            "session" => Some(SessionKind::Session),
            "service" => Some(SessionKind::Service),
            _ => None,
        }
    }
}

/// A revocation, as announced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revocation {
    /// Access tokens with this `sid` must be rejected.
    Session {
        session_id: String,
        user_id: String,
        revoked_at: Timestamp,
    },
    /// Every session the user had at `revoked_before` ended.
    User {
        user_id: String,
        revoked_before: Timestamp,
    },
}

impl Revocation {
    /// The instant the event is ordered (and its cursor set) by.
    pub fn at(&self) -> Timestamp {
        match self {
            Revocation::Session { revoked_at, .. } => *revoked_at,
            Revocation::User { revoked_before, .. } => *revoked_before,
        }
    }

    /// Two announcements of the same revocation share this key.
    pub fn dedupe_key(&self) -> String {
        match self {
            Revocation::Session { session_id, .. } => format!("s:{session_id}"),
            Revocation::User {
                user_id,
                revoked_before,
            } => format!("u:{user_id}:{}", revoked_before.millis()),
        }
    }
}

/// Who a verified credential belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub session_id: String,
    /// A service client (a service token), not a user.
    pub service: bool,
    /// The actor chain of a delegated token (RFC 8693 `act`): the service that presented it
    /// first, then the one before it; empty when the principal acts for itself.
    pub actors: Vec<String>,
    /// The owner proved the address (`ConfirmEmail`, `ResetPassword`) or an administrator said
    /// so; always false for a service.
    pub email_verified: bool,
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
    /// The credential is of a management session.
    pub management: bool,
    /// The login that started its session.
    pub authenticated_at: Timestamp,
}

/// Who may use a credential: the apps (for an audience) or the auth service's management RPCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach<'a> {
    /// An app's check (`Verify`, ext_authz): an access token for this audience (`None`: the
    /// apps' own), or a session token of an app session when that is the apps' audience.
    App(Option<&'a str>),
    /// The management RPCs: a credential of a management session only.
    Management,
    /// The subject of `ExchangeToken`: a credential a login issued (app or management), never
    /// a token minted for another audience.
    Exchange,
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

/// The session a login asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSpec {
    pub kind: SessionKind,
    /// A management session instead of an app session.
    pub management: bool,
}

impl From<SessionKind> for SessionSpec {
    /// An app session of this kind.
    fn from(kind: SessionKind) -> Self {
        Self {
            kind,
            management: false,
        }
    }
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
    /// The client's address as recorded on the session (`ip:port` of a direct peer, the IP
    /// past trusted proxies).
    pub peer_address: String,
    /// The client's address for the brute-force limits (`client_address.rs`); `None` when the
    /// call did not come over TCP.
    pub address: Option<std::net::IpAddr>,
}

/// What a gateway decision needs from a verified access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedClaims {
    pub user_id: String,
    pub session_id: String,
    pub roles: Vec<String>,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// `auth_time`, unix seconds, when the token has one.
    pub authenticated_at: Option<i64>,
    /// The `email_verified` claim (false when absent).
    pub email_verified: bool,
}

impl From<AccessClaims> for CachedClaims {
    fn from(claims: AccessClaims) -> Self {
        Self {
            user_id: claims.sub,
            session_id: claims.sid,
            roles: claims.roles,
            issued_at: claims.iat,
            expires_at: claims.exp,
            authenticated_at: claims.auth_time,
            email_verified: claims.email_verified.unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dedupe_key_tells_sessions_and_user_events_apart() {
        let at = Timestamp::from_millis(5);
        let session = Revocation::Session {
            session_id: "a".into(),
            user_id: "u".into(),
            revoked_at: at,
        };
        let user = Revocation::User {
            user_id: "a".into(),
            revoked_before: at,
        };
        assert_ne!(session.dedupe_key(), user.dedupe_key());
        assert_eq!(session.at(), at);
    }
}
