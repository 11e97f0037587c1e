//! The revoked set: sessions, and users whose every session ended, that were revoked recently
//! enough for some of their access tokens to be unexpired. Whoever checks access tokens without
//! reading the session (a [`crate::LocalVerifier`] in another service, the auth service's own
//! ext_authz gateway) applies the revocation feed to one of these and asks it about each token.
//! All instants are unix seconds, as in JWT claims.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct RevokedSet {
    /// Revoked session id -> the last second at which one of its tokens may still be unexpired.
    sessions: HashMap<String, i64>,
    /// User id -> (tokens issued before this second are revoked, last second that matters).
    users: HashMap<String, (i64, i64)>,
}

impl RevokedSet {
    /// Access tokens of `session_id` are revoked; the entry is kept through `keep_until`.
    pub fn revoke_session(&mut self, session_id: &str, keep_until: i64) {
        let entry = self
            .sessions
            .entry(session_id.to_owned())
            .or_insert(keep_until);
        *entry = (*entry).max(keep_until);
    }

    /// Access tokens of `user_id` issued before `revoked_before` are revoked; the entry is kept
    /// through `keep_until`. A later revocation of the same user moves both forward.
    pub fn revoke_user(&mut self, user_id: &str, revoked_before: i64, keep_until: i64) {
        let entry = self
            .users
            .entry(user_id.to_owned())
            .or_insert((revoked_before, keep_until));
        *entry = (entry.0.max(revoked_before), entry.1.max(keep_until));
    }

    /// Whether a token of `session_id` and `user_id`, issued at `issued_at` (its `iat`), is
    /// revoked: its session was, or all of its user's sessions were after it was issued.
    pub fn is_revoked(&self, session_id: &str, user_id: &str, issued_at: i64) -> bool {
        self.sessions.contains_key(session_id)
            || self
                .users
                .get(user_id)
                .is_some_and(|(before, _)| issued_at < *before)
    }

    /// Drops what can no longer matter at `now`: entries kept through an earlier second.
    pub fn forget_expired(&mut self, now: i64) {
        self.sessions.retain(|_, keep_until| *keep_until >= now);
        self.users.retain(|_, (_, keep_until)| *keep_until >= now);
    }

    /// Sessions and users held.
    pub fn len(&self) -> usize {
        self.sessions.len() + self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_sessions_and_users_are_refused_until_their_tokens_cannot_be_live() {
        let mut revoked = RevokedSet::default();
        revoked.revoke_session("s1", 1_000);
        revoked.revoke_user("u2", 20, 1_000);
        assert!(revoked.is_revoked("s1", "u1", 0));
        assert!(!revoked.is_revoked("s2", "u1", 0));
        // Issued before the user's revocation (second 20): refused; from second 20 on: accepted.
        assert!(revoked.is_revoked("s3", "u2", 19));
        assert!(!revoked.is_revoked("s3", "u2", 20));

        revoked.forget_expired(1_000);
        assert!(revoked.is_revoked("s1", "u1", 0));
        revoked.forget_expired(1_001);
        assert!(!revoked.is_revoked("s1", "u1", 0));
        assert!(!revoked.is_revoked("s3", "u2", 19));
        assert!(revoked.is_empty());
    }

    #[test]
    fn a_later_revocation_of_a_user_only_ever_widens_it() {
        let mut revoked = RevokedSet::default();
        revoked.revoke_user("u", 50, 500);
        revoked.revoke_user("u", 40, 400);
        assert!(revoked.is_revoked("s", "u", 49));
        revoked.forget_expired(450);
        assert!(revoked.is_revoked("s", "u", 49));
    }
}
