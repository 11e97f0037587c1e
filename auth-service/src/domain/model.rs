//! The types the use cases exchange with each other and with the transport.

use serde::{Deserialize, Serialize};

use super::{Timestamp, ports::RevokedSession};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// Access token + rotating refresh token.
    Tokens,
    /// One opaque session token.
    Session,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Tokens => "tokens",
            SessionKind::Session => "session",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "tokens" => Some(SessionKind::Tokens),
            "session" => Some(SessionKind::Session),
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

impl From<RevokedSession> for Revocation {
    fn from(session: RevokedSession) -> Self {
        Revocation::Session {
            session_id: session.session_id,
            user_id: session.user_id,
            revoked_at: session.revoked_at,
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
