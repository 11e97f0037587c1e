//! Register and log in: an account is created with an argon2id hash of a password that passes
//! the policy; a login proves the password (under the per-address throttle, the per-account
//! lockout and the shedding hash queue) and starts a session of either kind.

use super::{
    AuthCore, AuthError, Timestamp,
    accounts::{Email, format_roles, parse_roles},
    core::Grant,
    limits::{Attempt, Throttled},
    model::{ClientInfo, Credential, IssuedTokens, LoginOutcome, SessionKind, SessionSpec},
    opaque_token::{OpaqueToken, new_id},
    password_policy::{MAX_PASSWORD_BYTES, check_new_password},
    ports::{NewSession, StoreError, UserRecord},
    time::duration_millis,
};

/// Whether an anonymous caller may wait for a hashing slot.
enum Queue {
    /// Refused with `Overloaded` when the hashing queue is full.
    Shed,
    Wait,
}

impl AuthCore {
    /// Every check of a password (Login, ChangePassword): the shedding hash queue, then the
    /// per-account lockout, settled atomically after the check (limits.rs). A locked account,
    /// known or not, gets exactly the wrong-password answer after the same work, even for the
    /// right password. `stored` is `None` for an unknown account (a dummy hash is checked).
    pub(super) async fn check_password(
        &self,
        email_key: &str,
        client: Option<std::net::IpAddr>,
        password: String,
        stored: Option<String>,
        now: Timestamp,
    ) -> Result<bool, AuthError> {
        let known = stored.is_some();
        let matched = self.hasher.verify_or_shed(password, stored).await? && known;
        match self
            .limits
            .settle_login(email_key, client, matched, now)
            .await
        {
            Attempt::Locked { .. } => Ok(false),
            Attempt::Allowed => Ok(matched),
        }
    }

    pub async fn register(
        &self,
        email: &str,
        password: String,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        if !self.policy.allow_registration {
            return Err(AuthError::RegistrationDisabled);
        }
        self.new_account(email, password, &[], Queue::Shed, now)
            .await
    }

    /// Creates an account with the given roles (the admin API and CLI): waits for a hashing slot
    /// rather than being shed.
    pub async fn create_user(
        &self,
        email: &str,
        password: String,
        roles: &[String],
        now: Timestamp,
    ) -> Result<String, AuthError> {
        self.new_account(email, password, roles, Queue::Wait, now)
            .await
    }

    async fn new_account(
        &self,
        email: &str,
        password: String,
        roles: &[String],
        queue: Queue,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        let email = Email::parse(email)?;
        check_new_password(&password, self.policy.password_min_chars)?;
        let roles = format_roles(roles)?;
        let password_hash = match queue {
            Queue::Shed => self.hasher.hash_or_shed(password).await?,
            Queue::Wait => self.hasher.hash(password).await?,
        };
        let user = UserRecord {
            id: new_id()?,
            email: email.address,
            email_key: email.key,
            password_hash,
            roles,
            created_at: now,
            suspended_at: None,
        };
        match self.store.insert_user(&user).await {
            Ok(()) => Ok(user.id),
            Err(StoreError::Conflict) => Err(AuthError::EmailTaken),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn login(
        &self,
        email: &str,
        password: String,
        spec: SessionSpec,
        client: ClientInfo,
        now: Timestamp,
    ) -> Result<LoginOutcome, AuthError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::PasswordTooLong);
        }
        self.limits
            .throttle_address(Throttled::Login, client.address, now)
            .await?;
        // Shed at once, before any work; a shed login is not counted as a failure.
        self.hasher.ensure_capacity()?;
        let email_key = Email::lookup_key(email);
        // Something that cannot be an address names no account (and is never sent to the store,
        // where a NUL byte would be an error rather than a miss); it still pays the hash below.
        let user = match Email::parse(email) {
            Ok(_) => self.store.find_user_by_email_key(&email_key).await?,
            Err(_) => None,
        };
        // The hash check runs whether or not the account exists: same answer, same time.
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        // Kept only when the stored hash is to be upgraded after this login.
        let rehash_with = stored_hash
            .as_deref()
            .filter(|hash| self.hasher.needs_rehash(hash))
            .map(|_| password.clone());
        let matched = self
            .check_password(&email_key, client.address, password, stored_hash, now)
            .await?;
        let mut user = match user {
            Some(user) if matched => user,
            _ => return Err(AuthError::InvalidCredentials),
        };
        if let Some(password) = rehash_with
            && let Some(upgraded) = self.upgrade_hash(&user, password).await
        {
            user.password_hash = upgraded;
        }
        // Only after the password is proven does a suspended account say so (admin.rs).
        if user.suspended_at.is_some() {
            return Err(AuthError::AccountSuspended);
        }
        let outcome = self.start_session(&user, spec, client, now).await?;
        // A suspension or password change that raced this login ends its session (revoker.rs).
        self.revoker
            .end_if_superseded_meanwhile(
                &user.id,
                &outcome.session_id,
                Some(&user.password_hash),
                now,
            )
            .await?;
        Ok(outcome)
    }

    /// Replaces a hash made with older (weaker) argon2 parameters, after the password was
    /// proven, unless the password changed meanwhile (the write compares the hash first): the
    /// new hash, if written. A failure only delays the upgrade to the next login.
    async fn upgrade_hash(&self, user: &UserRecord, password: String) -> Option<String> {
        let user_id = &user.id;
        let result = match self.hasher.hash(password).await {
            Ok(hash) => self
                .store
                .update_password_hash(user_id, &user.password_hash, &hash)
                .await
                .map(|written| written.then_some(hash))
                .map_err(AuthError::from),
            Err(error) => Err(error),
        };
        match result {
            Ok(Some(hash)) => {
                tracing::info!(%user_id, "password hash upgraded to the current parameters");
                Some(hash)
            }
            Ok(None) => {
                tracing::info!(%user_id, "password changed during the login; hash not upgraded");
                None
            }
            Err(error) => {
                tracing::warn!(%user_id, %error, "upgrading a password hash failed");
                None
            }
        }
    }

    async fn start_session(
        &self,
        user: &UserRecord,
        spec: SessionSpec,
        client: ClientInfo,
        now: Timestamp,
    ) -> Result<LoginOutcome, AuthError> {
        let SessionSpec { kind, management } = spec;
        let session_id = new_id()?;
        let expires_at = now.plus(self.policy.session_max_lifetime);
        let credential_token = OpaqueToken::generate()?;
        let mut session = NewSession {
            id: session_id.clone(),
            user_id: user.id.clone(),
            kind,
            session_token_hash: None,
            refresh_token_hash: None,
            refresh_expires_at: None,
            created_at: now,
            idle_timeout_ms: 0,
            expires_at,
            user_agent: client.user_agent,
            peer_address: client.peer_address,
            management,
        };
        let credential = match kind {
            SessionKind::Tokens => {
                let refresh_expires_at = now.plus(self.policy.refresh_token_ttl).min(expires_at);
                session.idle_timeout_ms = duration_millis(self.policy.refresh_token_ttl);
                session.refresh_token_hash = Some(credential_token.hash.0);
                session.refresh_expires_at = Some(refresh_expires_at);
                self.store.insert_session(&session).await?;
                let grant = Grant {
                    user_id: &user.id,
                    session_id: &session_id,
                    roles: parse_roles(&user.roles),
                    session_expires_at: expires_at,
                    management,
                    authenticated_at: now,
                    service: false,
                    actors: Vec::new(),
                    email_verified: self.email_verified(&user.id).await?,
                };
                let (access_token, access_expires_at) =
                    self.mint_access_token(grant, None, now).await?;
                Credential::Tokens(IssuedTokens {
                    access_token,
                    access_expires_at,
                    refresh_token: credential_token.text,
                    refresh_expires_at,
                })
            }
            SessionKind::Service => {
                return Err(AuthError::InvalidArgument(
                    "a login cannot start a service session",
                ));
            }
            SessionKind::Session => {
                session.idle_timeout_ms = duration_millis(self.policy.session_idle_timeout);
                session.session_token_hash = Some(credential_token.hash.0);
                self.store.insert_session(&session).await?;
                Credential::Session {
                    token: credential_token.text,
                    expires_at,
                }
            }
        };
        let evicted = self
            .revoker
            .end_sessions_beyond(&user.id, self.policy.max_sessions_per_user.max(1), now)
            .await?;
        if evicted > 0 {
            tracing::info!(user_id = %user.id, evicted, "session cap reached; oldest sessions ended");
        }
        Ok(LoginOutcome {
            user_id: user.id.clone(),
            session_id,
            credential,
        })
    }
}
