//! What makes a session live: not revoked, before its absolute expiry, and not idle for longer
//! than its idle timeout. For a token session the idle timeout is the refresh token lifetime
//! (each refresh counts as activity); for a session-token session it is the configured idle
//! timeout, and each verification counts as activity.

use std::time::Duration;

use super::{
    AuthError, Timestamp,
    accounts::parse_roles,
    model::{Principal, SessionKind},
    ports::{LiveSession, SessionRecord},
};

impl SessionRecord {
    /// When the session ends if nothing happens before then.
    pub fn ends_at(&self) -> Timestamp {
        ends_at(self.last_seen_at, self.idle_timeout_ms, self.expires_at)
    }

    pub fn ensure_live(&self, now: Timestamp) -> Result<(), AuthError> {
        if self.revoked_at.is_some() {
            return Err(AuthError::SessionRevoked);
        }
        if now >= self.ends_at() {
            return Err(AuthError::SessionExpired);
        }
        Ok(())
    }

    /// Whether recording activity now is worth a write: only once the last record is older than
    /// a twentieth of the idle timeout (at most a minute), so a busy session costs few writes and
    /// its idle expiry drifts by at most that much.
    pub fn activity_is_stale(&self, now: Timestamp) -> bool {
        activity_is_stale(self.last_seen_at, self.idle_timeout_ms, now)
    }
}

impl LiveSession {
    pub fn of(record: &SessionRecord) -> Self {
        Self {
            principal: Principal {
                user_id: record.user_id.clone(),
                email: record.email.clone(),
                roles: parse_roles(&record.roles),
                session_id: record.id.clone(),
                service: record.kind == SessionKind::Service,
                actors: Vec::new(),
                email_verified: record.email_verified,
            },
            kind: record.kind,
            management: record.management,
            authenticated_at: record.created_at,
            last_seen_at: record.last_seen_at,
            idle_timeout_ms: record.idle_timeout_ms,
            expires_at: record.expires_at,
        }
    }

    pub fn ends_at(&self) -> Timestamp {
        ends_at(self.last_seen_at, self.idle_timeout_ms, self.expires_at)
    }

    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.ends_at()
    }

    pub fn activity_is_stale(&self, now: Timestamp) -> bool {
        activity_is_stale(self.last_seen_at, self.idle_timeout_ms, now)
    }
}

/// The end of a session last seen at `last_seen_at`: the earlier of idle and absolute expiry.
pub fn ends_at(last_seen_at: Timestamp, idle_timeout_ms: i64, expires_at: Timestamp) -> Timestamp {
    let idle_end = Timestamp::from_millis(last_seen_at.millis().saturating_add(idle_timeout_ms));
    idle_end.min(expires_at)
}

pub fn activity_is_stale(last_seen_at: Timestamp, idle_timeout_ms: i64, now: Timestamp) -> bool {
    let idle = Duration::from_millis(u64::try_from(idle_timeout_ms).unwrap_or(0));
    now.since(last_seen_at) >= (idle / 20).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ports::OwnerStanding;

    fn session(last_seen_ms: i64, idle_ms: i64, expires_ms: i64) -> SessionRecord {
        SessionRecord {
            id: "s".into(),
            user_id: "u".into(),
            email: "u@example.com".into(),
            roles: String::new(),
            kind: SessionKind::Session,
            session_token_hash: None,
            created_at: Timestamp::from_millis(0),
            last_seen_at: Timestamp::from_millis(last_seen_ms),
            idle_timeout_ms: idle_ms,
            expires_at: Timestamp::from_millis(expires_ms),
            refresh_current_hash: None,
            refresh_previous_hash: None,
            refresh_rotated_at: None,
            refresh_expires_at: None,
            revoked_at: None,
            user_agent: String::new(),
            peer_address: String::new(),
            management: false,
            email_verified: false,
            owner: OwnerStanding::Active,
        }
    }

    #[test]
    fn a_session_ends_at_the_earlier_of_idle_and_absolute_expiry() {
        let at = Timestamp::from_millis;
        let idle_first = session(1_000, 500, 10_000);
        assert!(idle_first.ensure_live(at(1_499)).is_ok());
        assert!(matches!(
            idle_first.ensure_live(at(1_500)),
            Err(AuthError::SessionExpired)
        ));

        let absolute_first = session(9_900, 500, 10_000);
        assert_eq!(absolute_first.ends_at(), at(10_000));

        let revoked = SessionRecord {
            revoked_at: Some(at(1)),
            ..session(1_000, 500, 10_000)
        };
        assert!(matches!(
            revoked.ensure_live(at(1_001)),
            Err(AuthError::SessionRevoked)
        ));
    }

    #[test]
    fn activity_is_recorded_at_most_every_twentieth_of_the_idle_timeout() {
        let hour = session(0, 3_600_000, i64::MAX);
        assert!(!hour.activity_is_stale(Timestamp::from_millis(59_999)));
        assert!(hour.activity_is_stale(Timestamp::from_millis(60_000)));
        let short = session(0, 2_000, i64::MAX);
        assert!(short.activity_is_stale(Timestamp::from_millis(100)));
    }
}
