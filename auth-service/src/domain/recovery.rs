//! Email verification and password reset: a one-time code goes to the account's address through
//! the [`Notifier`] (the service never sends it to the caller), and whoever holds it may confirm
//! the address or set a new password.
//!
//! A code is 256 random bits (base64url, 43 characters), kept only as its SHA-256, single-use
//! (consumed by a compare-and-set) and short-lived; a new code of a purpose replaces the
//! account's earlier one. Asking for a code answers the same whether or not the address names
//! an account, after the same work: the store runs the same statements (`issue_code`) and the
//! notifier's queue takes a slot either way (OWASP Forgot Password Cheat Sheet, "Consistent
//! responses"). Requests are counted per client network and per address (known or not); code
//! attempts per client network, so a guesser runs out of budget long before 2^256 matters.
//!
//! A reset ends every session of the account through the [`super::revoker::Revoker`] (announced
//! on the feed like any revocation): whoever asked for it may be evicting an intruder.

use std::{net::IpAddr, sync::Arc, time::Duration};

use super::{
    AuthCore, AuthError, Timestamp,
    accounts::Email,
    admin::AdminCore,
    limits::Budget,
    model::Principal,
    opaque_token::{OpaqueToken, is_identifier},
    password_policy::{MAX_PASSWORD_BYTES, check_new_password},
    ports::{
        AccountCodes, CodePurpose, CodeRecord, NewCode, Notice, NoticeKind, Notifier, RevokeReason,
    },
};

/// The settings of verification and reset (`config/accounts.rs` builds them).
#[derive(Clone, Copy, Debug)]
pub struct AccountPolicy {
    /// How long an email-verification code may be used.
    pub verification_code_ttl: Duration,
    /// How long a password-reset code may be used.
    pub reset_code_ttl: Duration,
    /// RequestEmailVerification and RequestPasswordReset calls per client network.
    pub requests_per_address: Budget,
    /// Codes of one purpose sent to one address (asked for, whether or not it names an account).
    pub requests_per_account: Budget,
    /// ConfirmEmail and ResetPassword calls per client network: what a code guesser gets.
    pub attempts_per_address: Budget,
}

/// What verification and reset run on: their policy and the notifier.
pub struct Accounts {
    pub policy: AccountPolicy,
    pub notifier: Arc<dyn Notifier>,
}

impl AuthCore {
    /// Enables verification and reset, delivering codes through `accounts.notifier`.
    pub fn with_accounts(mut self, accounts: Accounts) -> Self {
        self.accounts = Some(accounts);
        self
    }

    fn accounts(&self) -> Result<&Accounts, AuthError> {
        self.accounts
            .as_ref()
            .ok_or_else(|| AuthError::Internal("no notifier configured".into()))
    }

    fn codes(&self) -> Result<&dyn AccountCodes, AuthError> {
        self.store
            .account_codes()
            .ok_or_else(|| AuthError::Internal("the store keeps no account codes".into()))
    }

    /// Whether the user's address is verified (false where the store keeps no codes).
    pub(super) async fn email_verified(&self, user_id: &str) -> Result<bool, AuthError> {
        match self.store.account_codes() {
            Some(codes) => Ok(codes.email_verified(user_id).await?),
            None => Ok(false),
        }
    }

    /// Sends a code of `purpose` to the account `email` names, if any: the same answer (`Ok`),
    /// after the same work, either way.
    pub async fn request_account_code(
        &self,
        purpose: CodePurpose,
        email: &str,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        let accounts = self.accounts()?;
        let policy = &accounts.policy;
        // Malformed input names no account whatever the database holds: saying so reveals nothing.
        let email = Email::parse(email)?;
        self.limits
            .throttle_network("code-request", client, policy.requests_per_address, now)
            .await?;
        self.limits
            .throttle_account(
                purpose.as_str(),
                &email.key,
                policy.requests_per_account,
                now,
            )
            .await?;
        let (ttl, kind) = match purpose {
            CodePurpose::VerifyEmail => {
                (policy.verification_code_ttl, NoticeKind::EmailVerification)
            }
            CodePurpose::ResetPassword => (policy.reset_code_ttl, NoticeKind::PasswordReset),
        };
        let code = OpaqueToken::generate()?;
        let expires_at = now.plus(ttl);
        let recipient = self
            .codes()?
            .issue_code(&NewCode {
                hash: &code.hash.0,
                purpose,
                email_key: &email.key,
                created_at: now,
                expires_at,
            })
            .await?;
        let notice = recipient.map(|recipient| Notice {
            kind,
            user_id: recipient.user_id,
            email: recipient.email,
            code: code.text,
            expires_at,
        });
        if let Some(notice) = &notice {
            tracing::info!(user_id = %notice.user_id, kind = kind.as_str(), "account code issued");
        }
        accounts.notifier.submit(notice)
    }

    /// Confirms the address the code was sent to. Returns the account.
    pub async fn confirm_email(
        &self,
        code: &str,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        let hash = self
            .live_code(CodePurpose::VerifyEmail, code, client, now)
            .await?;
        let user_id = self
            .codes()?
            .confirm_email(&hash, now)
            .await?
            .ok_or(AuthError::CodeInvalid)?;
        // Sessions remembered as unverified are read again, here and on every replica.
        self.news.roles_changed(&user_id).await;
        tracing::info!(%user_id, "email address verified");
        Ok(user_id)
    }

    /// Sets a new password with a reset code and ends every session of the account. Returns
    /// how many sessions were live.
    pub async fn reset_password(
        &self,
        code: &str,
        new_password: String,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        let hash = self
            .live_code(CodePurpose::ResetPassword, code, client, now)
            .await?;
        // A refused password leaves the code usable for a better one.
        if new_password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::PasswordTooLong);
        }
        check_new_password(&new_password, self.policy.password_min_chars)?;
        let password_hash = self.hasher.hash_or_shed(new_password).await?;
        let user_id = self
            .codes()?
            .reset_password(&hash, &password_hash, now)
            .await?
            .ok_or(AuthError::CodeInvalid)?;
        let ended = self
            .revoker
            .end_user_sessions(&user_id, None, RevokeReason::PasswordChanged, now)
            .await?;
        tracing::info!(%user_id, ended, "password reset with a code; every session ended");
        Ok(ended)
    }

    /// The hash of `code` if it is a live code of `purpose`, after counting the attempt against
    /// the client's budget. Unknown, used and replaced codes all answer `CodeInvalid`.
    async fn live_code(
        &self,
        purpose: CodePurpose,
        code: &str,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Vec<u8>, AuthError> {
        let accounts = self.accounts()?;
        self.limits
            .throttle_network(
                "code-attempt",
                client,
                accounts.policy.attempts_per_address,
                now,
            )
            .await?;
        if code.is_empty() {
            return Err(AuthError::InvalidArgument("code is required"));
        }
        let hash = OpaqueToken::hash_of(code).map_err(|_| AuthError::CodeInvalid)?;
        let record = self.codes()?.find_code(&hash.0).await?;
        check_code(record.as_ref(), purpose, now)?;
        Ok(hash.0)
    }
}

/// Whether a stored code may be used for `purpose` at `now`.
fn check_code(
    record: Option<&CodeRecord>,
    purpose: CodePurpose,
    now: Timestamp,
) -> Result<(), AuthError> {
    match record {
        Some(record) if record.purpose == purpose && !record.consumed => {
            if now >= record.expires_at {
                Err(AuthError::CodeExpired)
            } else {
                Ok(())
            }
        }
        _ => Err(AuthError::CodeInvalid),
    }
}

impl AdminCore {
    /// Marks the user's address verified or not, whatever codes say (an address checked some
    /// other way, or one found to be wrong). Verify sees it at once, as for roles; issued access
    /// tokens keep their claim until they expire.
    pub async fn set_email_verified(
        &self,
        caller: &Principal,
        user_id: &str,
        verified: bool,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        Self::require_admin(caller)?;
        if user_id.is_empty() {
            return Err(AuthError::InvalidArgument("user_id is required"));
        }
        if user_id.chars().any(char::is_control) {
            return Err(AuthError::InvalidArgument(
                "user_id must not contain control characters",
            ));
        }
        if !is_identifier(user_id) {
            return Err(AuthError::UserNotFound);
        }
        let core = self.core();
        if !core
            .codes()?
            .set_email_verified(user_id, verified, now)
            .await?
        {
            return Err(AuthError::UserNotFound);
        }
        core.news.roles_changed(user_id).await;
        tracing::info!(%user_id, admin = %caller.user_id, verified, "email verification set");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(purpose: CodePurpose, consumed: bool) -> CodeRecord {
        CodeRecord {
            user_id: "u".into(),
            purpose,
            expires_at: Timestamp::from_millis(10_000),
            consumed,
        }
    }

    #[test]
    fn a_code_works_once_for_its_purpose_until_it_expires() {
        let before = Timestamp::from_millis(9_999);
        let reset = record(CodePurpose::ResetPassword, false);
        assert!(check_code(Some(&reset), CodePurpose::ResetPassword, before).is_ok());
        assert!(matches!(
            check_code(
                Some(&reset),
                CodePurpose::ResetPassword,
                Timestamp::from_millis(10_000)
            ),
            Err(AuthError::CodeExpired)
        ));
        assert!(matches!(
            check_code(Some(&reset), CodePurpose::VerifyEmail, before),
            Err(AuthError::CodeInvalid)
        ));
        let used = record(CodePurpose::ResetPassword, true);
        assert!(matches!(
            check_code(Some(&used), CodePurpose::ResetPassword, before),
            Err(AuthError::CodeInvalid)
        ));
        assert!(matches!(
            check_code(None, CodePurpose::ResetPassword, before),
            Err(AuthError::CodeInvalid)
        ));
    }
}
