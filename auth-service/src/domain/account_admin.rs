//! The account-administration use cases beyond `admin.rs`: list accounts a page at a time,
//! delete one (an anonymous tombstone stays, so its id is never reused), set a user's password,
//! and import accounts from another application (`import.rs`). Like every `AdminCore` method,
//! each refuses a caller without the `admin` role before it looks at its arguments.

use super::{
    AuthError, Timestamp,
    accounts::{Email, format_roles},
    admin::{AdminCore, UserView, user_id_argument},
    import::{ImportRow, MAX_IMPORT_BATCH, RowOutcome, check_row, outcomes},
    model::Principal,
    paging::{Listing, Page, PageRequest},
    password_policy::check_new_password,
    ports::{Keyset, RevokeReason, UserFilter, UserRecord},
};

/// Which accounts `list_users` shows (every filter given must hold).
#[derive(Clone, Debug, Default)]
pub struct UserQuery<'a> {
    /// Only emails starting with this, compared case-insensitively.
    pub email_prefix: &'a str,
    /// Only accounts with this role.
    pub role: &'a str,
    /// Only suspended (`Some(true)`) or only active (`Some(false)`) accounts.
    pub suspended: Option<bool>,
}

/// What `delete_user` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deletion {
    /// False when the account had been deleted before (the call only ended what was left).
    pub newly_deleted: bool,
    /// How many live sessions were ended.
    pub revoked: u64,
}

impl AdminCore {
    /// One page of accounts, in creation order (deleted accounts and service clients never).
    pub async fn list_users(
        &self,
        caller: &Principal,
        query: UserQuery<'_>,
        page: &PageRequest,
    ) -> Result<Page<UserView>, AuthError> {
        Self::require_admin(caller)?;
        if query.email_prefix.chars().any(char::is_control) {
            return Err(AuthError::InvalidArgument(
                "email_prefix must not contain control characters",
            ));
        }
        if !query.role.is_empty() {
            format_roles(&[query.role.to_owned()])?;
        }
        let filter = UserFilter {
            email_key_prefix: Email::lookup_key(query.email_prefix),
            role: query.role.to_owned(),
            suspended: query.suspended,
        };
        let users = self
            .core()
            .store
            .list_users(&filter, page.after.as_ref(), page.fetch_limit())
            .await?;
        let page = page.page(Listing::Users, users, |user: &UserRecord| Keyset {
            created_at: user.created_at,
            id: user.id.clone(),
        });
        Ok(Page {
            items: page.items.into_iter().map(UserView::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    /// A user id an administrator may delete or set the password of: not their own (they have
    /// ChangePassword, and would lock themselves out), not a service client's.
    async fn managed_account(&self, caller: &Principal, user_id: &str) -> Result<(), AuthError> {
        user_id_argument(user_id)?;
        if user_id == caller.user_id {
            return Err(AuthError::InvalidArgument(
                "an administrator cannot do this to their own account",
            ));
        }
        if self
            .core()
            .store
            .find_service_client(user_id)
            .await?
            .is_some()
        {
            return Err(AuthError::InvalidArgument(
                "a service client is managed with DisableServiceClient",
            ));
        }
        Ok(())
    }

    /// Deletes the account: the tombstone is written first, then every session ends (through
    /// the `Revoker`, announced on the feed). Deleting a deleted account ends whatever session
    /// is left (a retry after a failure between the two) and changes nothing else.
    pub async fn delete_user(
        &self,
        caller: &Principal,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Deletion, AuthError> {
        Self::require_admin(caller)?;
        self.managed_account(caller, user_id).await?;
        let newly_deleted = match self.user(user_id).await {
            Ok(_) => true,
            Err(AuthError::UserDeleted) => false,
            Err(error) => return Err(error),
        };
        let revoked = self.core().revoker.delete_user(user_id, now).await?;
        tracing::info!(%user_id, admin = %caller.user_id, revoked, newly_deleted, "account deleted");
        Ok(Deletion {
            newly_deleted,
            revoked,
        })
    }

    /// Sets a new password for a user (who forgot theirs): the password policy applies, it is
    /// hashed on the hashing queue (waiting for a slot, as for an administrator's CreateUser),
    /// and every session of the user ends. Returns how many were live.
    pub async fn set_password(
        &self,
        caller: &Principal,
        user_id: &str,
        password: String,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        Self::require_admin(caller)?;
        self.managed_account(caller, user_id).await?;
        check_new_password(&password, self.core().policy().password_min_chars)?;
        let user = self.user(user_id).await?;
        let hash = self.core().hasher.hash(password).await?;
        // A compare-and-set against the hash read above: a login's hash upgrade or the user's
        // own change in between is overwritten on the next attempt, never silently lost to it.
        let mut expected = user.password_hash;
        for _ in 0..3 {
            if self
                .core()
                .store
                .update_password_hash(user_id, &expected, &hash)
                .await?
            {
                let revoked = self
                    .core()
                    .revoker
                    .end_user_sessions(user_id, None, RevokeReason::PasswordSet, now)
                    .await?;
                tracing::info!(%user_id, admin = %caller.user_id, revoked, "password set by an administrator");
                return Ok(revoked);
            }
            expected = self.user(user_id).await?.password_hash;
        }
        Err(AuthError::Unavailable(
            "the password kept changing while it was being set".into(),
        ))
    }

    /// Imports a batch of accounts in one transaction: one outcome per row, in order.
    pub async fn import_users(
        &self,
        caller: &Principal,
        rows: Vec<ImportRow>,
        now: Timestamp,
    ) -> Result<Vec<RowOutcome>, AuthError> {
        Self::require_admin(caller)?;
        if rows.len() > MAX_IMPORT_BATCH {
            return Err(AuthError::InvalidArgument(
                "at most 1000 users per ImportUsers call",
            ));
        }
        let hasher = self.core().hasher.as_ref();
        let checked: Vec<Result<UserRecord, &'static str>> = rows
            .into_iter()
            .map(|row| check_row(row, hasher, now))
            .collect();
        let valid: Vec<UserRecord> = checked.iter().filter_map(|row| row.clone().ok()).collect();
        let stored = if valid.is_empty() {
            Vec::new()
        } else {
            self.core().store.import_users(&valid).await?
        };
        let outcomes = outcomes(checked, stored)?;
        let imported = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, RowOutcome::Imported { .. }))
            .count();
        tracing::info!(admin = %caller.user_id, rows = outcomes.len(), imported, "accounts imported");
        Ok(outcomes)
    }
}
