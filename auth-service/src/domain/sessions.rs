//! A user's own sessions: log out, list them, end one or all, and change the password (which
//! ends every other session: whoever changed it may be evicting an intruder). An administrator
//! may act on anyone's sessions.

use auth_api::access_token::Audience;

use super::{
    AuthCore, AuthError, Timestamp,
    limits::Throttled,
    model::Principal,
    opaque_token::{OpaqueToken, is_identifier},
    paging::{Listing, Page, PageRequest},
    password_policy::{MAX_PASSWORD_BYTES, check_new_password},
    ports::{Keyset, RevokeReason, SessionRecord},
};

impl AuthCore {
    /// Ends the session behind an access, refresh or session token. Ending an ended session is
    /// not an error; a token that is not ours is.
    pub async fn logout(&self, token: &str, now: Timestamp) -> Result<(), AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingCredential);
        }
        let session_id = if OpaqueToken::looks_like(token) {
            let hash = OpaqueToken::hash_of(token)?;
            match self.store.find_session_by_token_hash(&hash.0).await? {
                Some(session) => session.id,
                None => {
                    self.store
                        .find_session_by_refresh_hash(&hash.0)
                        .await?
                        .ok_or(AuthError::TokenInvalid)?
                        .id
                }
            }
        } else {
            // Any audience: an exchanged token may end its session too.
            self.decode_access_token(token, Audience::Any, now)
                .await?
                .claims
                .sid
                .clone()
        };
        self.revoker
            .end_session(&session_id, RevokeReason::Logout, now)
            .await?;
        Ok(())
    }

    /// Resolves the user a management call acts on: the caller, or anyone for an admin.
    fn target_user(caller: &Principal, user_id: &str) -> Result<String, AuthError> {
        if user_id.is_empty() || user_id == caller.user_id {
            Ok(caller.user_id.clone())
        } else if caller.is_admin() {
            if user_id.chars().any(char::is_control) {
                return Err(AuthError::InvalidArgument(
                    "user_id must not contain control characters",
                ));
            }
            if !is_identifier(user_id) {
                return Err(AuthError::UserNotFound);
            }
            Ok(user_id.to_owned())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// One page of the live sessions of the caller (or of `user_id`, for an admin), newest
    /// first.
    pub async fn list_sessions(
        &self,
        caller: &Principal,
        user_id: &str,
        page: &PageRequest,
        now: Timestamp,
    ) -> Result<Page<SessionRecord>, AuthError> {
        let target = Self::target_user(caller, user_id)?;
        let sessions = self
            .store
            .list_sessions(&target, now, page.after.as_ref(), page.fetch_limit())
            .await?;
        Ok(page.page(Listing::Sessions, sessions, |session| Keyset {
            created_at: session.created_at,
            id: session.id.clone(),
        }))
    }

    pub async fn revoke_session(
        &self,
        caller: &Principal,
        session_id: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        if session_id.is_empty() {
            return Err(AuthError::InvalidArgument("session_id is required"));
        }
        // A NUL byte would be an error in PostgreSQL, not a miss: refused before any query.
        if session_id.chars().any(char::is_control) {
            return Err(AuthError::InvalidArgument(
                "session_id must not contain control characters",
            ));
        }
        if !is_identifier(session_id) {
            return Err(AuthError::SessionNotFound);
        }
        let session = self
            .store
            .find_session(session_id)
            .await?
            .ok_or(AuthError::SessionNotFound)?;
        Self::target_user(caller, &session.user_id)?;
        self.revoker
            .end_session(session_id, RevokeReason::Revoked, now)
            .await?;
        Ok(())
    }

    pub async fn revoke_all_sessions(
        &self,
        caller: &Principal,
        user_id: &str,
        keep_current: bool,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        let target = Self::target_user(caller, user_id)?;
        let keep = (keep_current && target == caller.user_id).then_some(caller.session_id.as_str());
        self.revoker
            .end_user_sessions(&target, keep, RevokeReason::Revoked, now)
            .await
    }

    /// Changes the caller's password and ends their other sessions (whoever changed the password
    /// may be evicting an intruder). The current password is checked like a login's, under the
    /// same per-address budget (`client`), account lockout and shedding queue: a stolen token is
    /// no password-guessing oracle.
    pub async fn change_password(
        &self,
        caller: &Principal,
        current_password: String,
        new_password: String,
        client: Option<std::net::IpAddr>,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        self.limits
            .throttle_address(Throttled::Login, client, now)
            .await?;
        if current_password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let user = self
            .store
            .find_user(&caller.user_id)
            .await?
            .ok_or(AuthError::TokenInvalid)?;
        let proven = self
            .check_password(
                &user.email_key,
                client,
                current_password,
                Some(user.password_hash.clone()),
                now,
            )
            .await?;
        if !proven {
            return Err(AuthError::InvalidCredentials);
        }
        check_new_password(&new_password, self.policy.password_min_chars)?;
        let new_hash = self.hasher.hash(new_password).await?;
        // Another change (or a login's hash upgrade) since the check: this one proved a
        // password that may no longer be current, so it is refused.
        if !self
            .store
            .update_password_hash(&user.id, &user.password_hash, &new_hash)
            .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        self.revoker
            .end_user_sessions(
                &user.id,
                Some(&caller.session_id),
                RevokeReason::PasswordChanged,
                now,
            )
            .await
    }
}
