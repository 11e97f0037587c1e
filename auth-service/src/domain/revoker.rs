//! The one way a session ends. Every path that ends sessions (logout, revoke, revoke-all, the
//! per-user cap, a password change, refresh-token reuse, suspension, deletion) goes through [`Revoker`],
//! which writes, *then* announces, and only then lets the caller answer: the session cache and
//! the revocation feeds (here and on every replica) must know before the client hears "done",
//! or `Verify` could still answer from memory for an ended session. It is the only caller of
//! the store's revoking writes (test `architecture::only_the_revoker_ends_sessions`).
//!
//! Suspension has two halves, in this order: the user row is marked (`suspended_at`), *then* the
//! user's sessions are revoked and announced. Login and Refresh check the mark after they hold a
//! session ([`Revoker::end_if_superseded_meanwhile`]), so a login racing with a suspension cannot
//! leave a live session behind: either its re-check sees the mark and ends the session itself, or
//! the re-check ran before the mark was committed, hence the session row existed before the
//! revocation that follows the mark, and that revocation ends it.

use std::sync::Arc;

use super::{
    AuthError, Timestamp,
    model::Revocation,
    ports::{OwnerStanding, RevocationNews, RevokeReason, Store},
};

pub struct Revoker {
    store: Arc<dyn Store>,
    news: Arc<dyn RevocationNews>,
}

impl Revoker {
    pub fn new(store: Arc<dyn Store>, news: Arc<dyn RevocationNews>) -> Self {
        Self { store, news }
    }

    /// Ends one session; ending an ended session does nothing. True if this call ended it.
    pub async fn end_session(
        &self,
        session_id: &str,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<bool, AuthError> {
        let revoked = self.store.revoke_session(session_id, reason, now).await?;
        let ended = revoked.is_some();
        self.announce(revoked.into_iter().map(Revocation::from).collect())
            .await;
        Ok(ended)
    }

    /// Ends a user's sessions but `keep`; returns how many were live. With none kept, every
    /// token issued to the user before `now` is announced dead too (for verifiers that only see
    /// tokens).
    pub async fn end_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        let revoked = self
            .store
            .revoke_user_sessions(user_id, keep, reason, now)
            .await?;
        let count = u64::try_from(revoked.len()).unwrap_or(u64::MAX);
        let mut revocations: Vec<Revocation> = revoked.into_iter().map(Revocation::from).collect();
        if keep.is_none() {
            revocations.push(Revocation::User {
                user_id: user_id.to_owned(),
                revoked_before: now,
            });
        }
        self.announce(revocations).await;
        Ok(count)
    }

    /// Ends the user's oldest live sessions beyond the newest `keep`; returns how many.
    pub async fn end_sessions_beyond(
        &self,
        user_id: &str,
        keep: u32,
        now: Timestamp,
    ) -> Result<usize, AuthError> {
        let evicted = self.store.evict_sessions_beyond(user_id, keep, now).await?;
        let count = evicted.len();
        self.announce(evicted.into_iter().map(Revocation::from).collect())
            .await;
        Ok(count)
    }

    /// Marks the user suspended, then ends all their sessions (see the module comment); `None`
    /// if there is no such user. Suspending again ends whatever is left and keeps the first
    /// suspension's instant.
    pub async fn suspend(&self, user_id: &str, now: Timestamp) -> Result<Option<u64>, AuthError> {
        if !self.store.suspend_user(user_id, now).await? {
            return Ok(None);
        }
        let count = self
            .end_user_sessions(user_id, None, RevokeReason::Suspended, now)
            .await?;
        Ok(Some(count))
    }

    /// Deletes the account (the tombstone: `Store::delete_user`, which does nothing to an
    /// account deleted before), then ends all its sessions, in the order and with the
    /// announcement of a suspension (see the module comment); returns how many were live.
    pub async fn delete_user(&self, user_id: &str, now: Timestamp) -> Result<u64, AuthError> {
        self.store.delete_user(user_id, now).await?;
        self.end_user_sessions(user_id, None, RevokeReason::Deleted, now)
            .await
    }

    /// Called by Login and Refresh once they hold a session: if the user has been suspended
    /// meanwhile, or (for a login, which proved `proven_hash`) their password has changed, end
    /// that session and refuse. The same order argument as suspension's holds for a password
    /// change, which writes the hash *then* ends the other sessions.
    pub async fn end_if_superseded_meanwhile(
        &self,
        user_id: &str,
        session_id: &str,
        proven_hash: Option<&str>,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        let Some(user) = self.store.find_user(user_id).await? else {
            return Ok(());
        };
        match self
            .end_if_owner_barred(session_id, user.standing(), now)
            .await
        {
            // A login answers a deleted account like a wrong password.
            Err(AuthError::SessionRevoked) if proven_hash.is_some() => {
                return Err(AuthError::InvalidCredentials);
            }
            outcome => outcome?,
        }
        if proven_hash.is_some_and(|proven| proven != user.password_hash) {
            self.end_session(session_id, RevokeReason::PasswordChanged, now)
                .await?;
            return Err(AuthError::InvalidCredentials);
        }
        Ok(())
    }

    /// Ends the session if its owner's account, as read after (or in the same statement as)
    /// the session, is deleted or suspended. Refresh reads both in one statement, so the order
    /// argument of the module comment holds without reading the account again.
    pub async fn end_if_owner_barred(
        &self,
        session_id: &str,
        owner: OwnerStanding,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        let (reason, refusal) = match owner {
            OwnerStanding::Active => return Ok(()),
            OwnerStanding::Deleted => (RevokeReason::Deleted, AuthError::SessionRevoked),
            OwnerStanding::Suspended => (RevokeReason::Suspended, AuthError::AccountSuspended),
        };
        self.end_session(session_id, reason, now).await?;
        Err(refusal)
    }

    async fn announce(&self, revocations: Vec<Revocation>) {
        if !revocations.is_empty() {
            self.news.announce(revocations).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        model::SessionKind,
        ports::{NewSession, UserRecord},
        testing::revoker,
    };

    async fn user_with_session(store: &dyn Store, hash: &str) -> Result<(), AuthError> {
        let at = Timestamp::from_millis(1_000);
        store
            .insert_user(&UserRecord {
                id: "u1".into(),
                email: "u1@example.com".into(),
                email_key: "u1@example.com".into(),
                password_hash: hash.into(),
                roles: String::new(),
                created_at: at,
                suspended_at: None,
            })
            .await?;
        store
            .insert_session(&NewSession {
                id: "s1".into(),
                user_id: "u1".into(),
                kind: SessionKind::Session,
                session_token_hash: Some(vec![1; 32]),
                refresh_token_hash: None,
                refresh_expires_at: None,
                created_at: at,
                idle_timeout_ms: 3_600_000,
                expires_at: Timestamp::from_millis(10_000_000),
                user_agent: String::new(),
                peer_address: String::new(),
                management: false,
            })
            .await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_login_whose_password_changed_meanwhile_loses_its_session() -> Result<(), AuthError> {
        let (store, news, revoker) = revoker();
        user_with_session(store.as_ref(), "old-hash").await?;
        // The change wins the compare-and-set; the login proved the old hash.
        assert!(
            store
                .update_password_hash("u1", "old-hash", "new-hash")
                .await?
        );
        let now = Timestamp::from_millis(2_000);
        let outcome = revoker
            .end_if_superseded_meanwhile("u1", "s1", Some("old-hash"), now)
            .await;
        assert!(matches!(outcome, Err(AuthError::InvalidCredentials)));
        assert!(store.session("s1").is_some_and(|s| s.revoked_at.is_some()));
        assert_eq!(news.announced().len(), 1);
        // A hash upgrade computed from the old hash cannot overwrite the change.
        assert!(
            !store
                .update_password_hash("u1", "old-hash", "upgraded")
                .await?
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_login_with_the_current_password_keeps_its_session() -> Result<(), AuthError> {
        let (store, _news, revoker) = revoker();
        user_with_session(store.as_ref(), "hash").await?;
        revoker
            .end_if_superseded_meanwhile("u1", "s1", Some("hash"), Timestamp::from_millis(2_000))
            .await?;
        assert!(store.session("s1").is_some_and(|s| s.revoked_at.is_none()));
        Ok(())
    }
}
