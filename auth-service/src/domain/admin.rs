//! The administration use cases behind `AdminService`: create accounts, look them up, set their
//! roles, suspend and reactivate them, list and end anyone's sessions, rotate the signing key or
//! revoke a compromised one.
//! Every method takes the verified caller and refuses anyone without the `admin` role before it
//! looks at its arguments. Suspension is the [`super::revoker::Revoker`]'s (its module comment
//! says why the mark comes before the revocation).

use std::{sync::Arc, time::Duration};

use super::{
    AuthCore, AuthError, Timestamp,
    accounts::{Email, format_roles, parse_roles},
    model::Principal,
    opaque_token::is_identifier,
    paging::{Page, PageRequest},
    ports::{SessionRecord, UserRecord},
};

/// A new key may be scheduled at most this far ahead: a longer delay is almost certainly a typo,
/// and would leave the current key signing long after the operator meant to replace it.
pub const MAX_KEY_ACTIVATION_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

/// An account as an administrator sees it (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub created_at: Timestamp,
    pub suspended_at: Option<Timestamp>,
}

impl From<UserRecord> for UserView {
    fn from(user: UserRecord) -> Self {
        Self {
            roles: parse_roles(&user.roles),
            id: user.id,
            email: user.email,
            created_at: user.created_at,
            suspended_at: user.suspended_at,
        }
    }
}

/// How `get_user` finds an account.
#[derive(Clone, Copy, Debug)]
pub enum UserLookup<'a> {
    Id(&'a str),
    /// Compared case-insensitively.
    Email(&'a str),
}

/// A newly published signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotatedKey {
    pub kid: String,
    pub activates_at: Timestamp,
}

/// A signing key revoked as compromised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedKey {
    /// The key that signs from now on; `None` if the key was revoked before (nothing changed).
    pub successor_kid: Option<String>,
}

pub struct AdminCore {
    core: Arc<AuthCore>,
    /// Used when a rotation does not say when the new key should start signing.
    key_activation_delay: Duration,
}

impl AdminCore {
    pub fn new(core: Arc<AuthCore>, key_activation_delay: Duration) -> Self {
        Self {
            core,
            key_activation_delay,
        }
    }

    /// The caller of an administrative RPC: a credential of a management session whose login
    /// is at most `AUTH_ADMIN_MAX_AUTH_AGE` old, so a long-lived session token alone (stolen,
    /// or left in a terminal) cannot create admins. Whether they are an admin is each call's.
    pub async fn authenticate(&self, token: &str, now: Timestamp) -> Result<Principal, AuthError> {
        let verified = self.core.authenticate_manager(token, now).await?;
        if now.since(verified.authenticated_at) > self.core.policy().admin_max_auth_age {
            return Err(AuthError::ReauthenticationRequired);
        }
        Ok(verified.principal)
    }

    pub(super) fn core(&self) -> &AuthCore {
        &self.core
    }

    pub(super) fn require_admin(caller: &Principal) -> Result<(), AuthError> {
        if caller.is_admin() {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// The live account `user_id` names: `UserNotFound` for none, `UserDeleted` for a
    /// tombstone.
    pub(super) async fn user(&self, user_id: &str) -> Result<UserRecord, AuthError> {
        user_id_argument(user_id)?;
        if !is_identifier(user_id) {
            return Err(AuthError::UserNotFound);
        }
        match self.core.store.find_user(user_id).await? {
            None => Err(AuthError::UserNotFound),
            Some(user) if user.is_deleted() => Err(AuthError::UserDeleted),
            Some(user) => Ok(user),
        }
    }

    /// A service client's principal is no account to suspend or reactivate: its lifecycle is
    /// `DisableServiceClient` and `RotateServiceClientSecret` (a reactivated principal would
    /// otherwise look enabled to `Verify` while its client stays disabled).
    async fn refuse_service_client(&self, user_id: &str) -> Result<(), AuthError> {
        if is_identifier(user_id)
            && self
                .core
                .store
                .find_service_client(user_id)
                .await?
                .is_some()
        {
            return Err(AuthError::NotAnAccount);
        }
        Ok(())
    }

    /// Creates an account with roles, whether or not self-registration is enabled.
    pub async fn create_user(
        &self,
        caller: &Principal,
        email: &str,
        password: String,
        roles: &[String],
        now: Timestamp,
    ) -> Result<String, AuthError> {
        Self::require_admin(caller)?;
        let user_id = self.core.create_user(email, password, roles, now).await?;
        tracing::info!(%user_id, admin = %caller.user_id, ?roles, "account created by an administrator");
        Ok(user_id)
    }

    pub async fn get_user(
        &self,
        caller: &Principal,
        lookup: UserLookup<'_>,
    ) -> Result<UserView, AuthError> {
        Self::require_admin(caller)?;
        let user = match lookup {
            UserLookup::Id(user_id) => self.user(user_id).await?,
            UserLookup::Email(email) if email.chars().any(char::is_control) => {
                return Err(AuthError::InvalidArgument(
                    "email must not contain control characters",
                ));
            }
            UserLookup::Email(email) => match Email::parse(email) {
                Ok(email) => self
                    .core
                    .store
                    .find_user_by_email_key(&email.key)
                    .await?
                    .ok_or(AuthError::UserNotFound)?,
                Err(_) => return Err(AuthError::UserNotFound),
            },
        };
        Ok(user.into())
    }

    /// Replaces the user's roles (duplicates dropped, order kept). Verify reads roles with the
    /// session (the session cache forgets the user's sessions on every replica before this
    /// returns, or, for a replica that missed the fan-out, within a poll interval: the store logs
    /// the change), so it sees the change at once; issued access tokens keep their `roles` claim.
    pub async fn set_roles(
        &self,
        caller: &Principal,
        user_id: &str,
        roles: &[String],
        now: Timestamp,
    ) -> Result<UserView, AuthError> {
        Self::require_admin(caller)?;
        user_id_argument(user_id)?;
        let mut unique: Vec<String> = Vec::with_capacity(roles.len());
        for role in roles {
            if !unique.contains(role) {
                unique.push(role.clone());
            }
        }
        let stored = format_roles(&unique)?;
        // A deleted account's tombstone is refused by name (UserDeleted).
        self.user(user_id).await?;
        if !self
            .core
            .store
            .set_user_roles(user_id, &stored, now)
            .await?
        {
            return Err(AuthError::UserNotFound);
        }
        self.core.news.roles_changed(user_id).await;
        tracing::info!(%user_id, admin = %caller.user_id, roles = ?unique, "roles changed");
        Ok(self.user(user_id).await?.into())
    }

    /// Suspends the account and ends its sessions; returns how many were live. Suspending again
    /// ends whatever is left (a retry after a failure between the two halves) and keeps the
    /// first suspension's instant.
    pub async fn suspend_user(
        &self,
        caller: &Principal,
        user_id: &str,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        Self::require_admin(caller)?;
        user_id_argument(user_id)?;
        if user_id == caller.user_id {
            return Err(AuthError::InvalidArgument(
                "an administrator cannot suspend their own account",
            ));
        }
        self.refuse_service_client(user_id).await?;
        self.user(user_id).await?;
        let count = self
            .core
            .revoker
            .suspend(user_id, now)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        tracing::info!(%user_id, admin = %caller.user_id, revoked = count, "account suspended");
        Ok(count)
    }

    /// Lifts a suspension. Sessions the suspension ended stay ended.
    pub async fn reactivate_user(
        &self,
        caller: &Principal,
        user_id: &str,
    ) -> Result<(), AuthError> {
        Self::require_admin(caller)?;
        self.refuse_service_client(user_id).await?;
        self.user(user_id).await?;
        if !self.core.store.reactivate_user(user_id).await? {
            return Err(AuthError::UserNotFound);
        }
        tracing::info!(%user_id, admin = %caller.user_id, "account reactivated");
        Ok(())
    }

    pub async fn list_user_sessions(
        &self,
        caller: &Principal,
        user_id: &str,
        page: &PageRequest,
        now: Timestamp,
    ) -> Result<Page<SessionRecord>, AuthError> {
        Self::require_admin(caller)?;
        let user = self.user(user_id).await?;
        self.core.list_sessions(caller, &user.id, page, now).await
    }

    pub async fn revoke_session(
        &self,
        caller: &Principal,
        session_id: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        Self::require_admin(caller)?;
        self.core.revoke_session(caller, session_id, now).await?;
        tracing::info!(%session_id, admin = %caller.user_id, "session revoked by an administrator");
        Ok(())
    }

    pub async fn revoke_user_sessions(
        &self,
        caller: &Principal,
        user_id: &str,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        Self::require_admin(caller)?;
        let user = self.user(user_id).await?;
        let count = self
            .core
            .revoke_all_sessions(caller, &user.id, false, now)
            .await?;
        tracing::info!(user_id = %user.id, admin = %caller.user_id, revoked = count,
            "sessions revoked by an administrator");
        Ok(count)
    }

    /// Publishes a new signing key that signs after `activate_in` (default: the configured
    /// activation delay), and tells this replica's revocation feeds about the new JWKS at once
    /// (other replicas see it at their next key reload).
    pub async fn rotate_signing_key(
        &self,
        caller: &Principal,
        activate_in: Option<Duration>,
        now: Timestamp,
    ) -> Result<RotatedKey, AuthError> {
        Self::require_admin(caller)?;
        let delay = activate_in.unwrap_or(self.key_activation_delay);
        if delay > MAX_KEY_ACTIVATION_DELAY {
            return Err(AuthError::InvalidArgument(
                "activate_in must be at most 30 days",
            ));
        }
        let policy = self.core.policy();
        let kid = self
            .core
            .keys
            .rotate(now, delay, policy.access_token_ttl + policy.leeway)
            .await?;
        self.core.news.keys_changed(self.core.jwks_json(now).await);
        tracing::info!(%kid, admin = %caller.user_id, activate_in = ?delay, "signing key rotated by an administrator");
        Ok(RotatedKey {
            kid,
            activates_at: now.plus(delay),
        })
    }

    /// Distrusts a compromised signing key at once: it leaves the JWKS, tokens it signed are
    /// refused by `Verify` here and, through the revocation feed, by every local verifier, and a
    /// new key signs from `now`. Other replicas stop trusting it at their next key reload, or
    /// sooner when a token with an unknown kid makes them reload.
    pub async fn revoke_signing_key(
        &self,
        caller: &Principal,
        kid: &str,
        now: Timestamp,
    ) -> Result<RevokedKey, AuthError> {
        Self::require_admin(caller)?;
        if !is_identifier(kid) {
            return Err(AuthError::InvalidArgument(
                "kid must be a key id from the JWKS",
            ));
        }
        let policy = self.core.policy();
        let successor_kid = self
            .core
            .keys
            .revoke(kid, now, policy.access_token_ttl + policy.leeway)
            .await?;
        // Even when it was revoked before: a feed that missed the first announcement hears it.
        self.core.news.signing_key_revoked(kid.to_owned()).await;
        self.core.news.keys_changed(self.core.jwks_json(now).await);
        tracing::warn!(%kid, successor = ?successor_kid, admin = %caller.user_id,
            "signing key revoked as compromised by an administrator");
        Ok(RevokedKey { successor_kid })
    }
}

/// A `user_id` argument: present, and without control characters (a NUL byte would be an error
/// in PostgreSQL, not a miss, so it never reaches a query).
pub(super) fn user_id_argument(user_id: &str) -> Result<(), AuthError> {
    if user_id.is_empty() {
        return Err(AuthError::InvalidArgument("user_id is required"));
    }
    if user_id.chars().any(char::is_control) {
        return Err(AuthError::InvalidArgument(
            "user_id must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[&str]) -> Principal {
        Principal {
            user_id: "u1".into(),
            email: "u1@example.com".into(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            session_id: "s1".into(),
            service: false,
            actors: Vec::new(),
            email_verified: false,
        }
    }

    #[test]
    fn only_the_admin_role_may_administer() {
        assert!(AdminCore::require_admin(&principal(&["admin"])).is_ok());
        for roles in [&[][..], &["billing"][..], &["Admin"][..]] {
            assert!(matches!(
                AdminCore::require_admin(&principal(roles)),
                Err(AuthError::PermissionDenied)
            ));
        }
    }

    #[test]
    fn a_user_view_splits_the_stored_roles_and_drops_the_hash() {
        let view = UserView::from(UserRecord {
            id: "u1".into(),
            email: "A@example.com".into(),
            email_key: "a@example.com".into(),
            password_hash: "$argon2id$secret".into(),
            roles: "admin billing".into(),
            created_at: Timestamp::from_millis(5),
            suspended_at: Some(Timestamp::from_millis(7)),
        });
        assert_eq!(view.roles, ["admin", "billing"]);
        assert!(!format!("{view:?}").contains("argon2"));
    }
}
