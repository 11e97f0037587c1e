//! The ports of email verification and password reset (`domain/recovery.rs`): the one-time codes
//! at rest ([`AccountCodes`], implemented by `store/sql/accounts.rs`) and the delivery of a code
//! to its owner ([`Notifier`], implemented by `engine/notifier/`).

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{AuthError, Timestamp};

/// What a one-time code lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodePurpose {
    /// Prove that the account's address reaches its owner (`ConfirmEmail`).
    VerifyEmail,
    /// Set a new password without the old one (`ResetPassword`).
    ResetPassword,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::VerifyEmail => "verify_email",
            CodePurpose::ResetPassword => "reset_password",
        }
    }
}

/// A code about to be stored for whichever account `email_key` names (if any).
pub struct NewCode<'a> {
    /// SHA-256 of the code: the code itself is never stored.
    pub hash: &'a [u8],
    pub purpose: CodePurpose,
    pub email_key: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The account a code was stored for: where to send it.
#[derive(Clone)]
pub struct CodeRecipient {
    pub user_id: String,
    pub email: String,
}

/// A stored code, as found by its hash.
#[derive(Clone, Debug)]
pub struct CodeRecord {
    pub user_id: String,
    pub purpose: CodePurpose,
    pub expires_at: Timestamp,
    pub consumed: bool,
}

#[async_trait]
pub trait AccountCodes: Send + Sync {
    /// In one transaction, whether or not `code.email_key` names an account (the same statements
    /// run and a row is written either way, so the answer's timing says nothing): the account's
    /// earlier codes of the purpose are deleted and this one stored (for no account: stored
    /// unusable). `None` when no account has the address.
    async fn issue_code(&self, code: &NewCode<'_>) -> Result<Option<CodeRecipient>, StoreError>;
    /// The code with this hash, consumed or not.
    async fn find_code(&self, hash: &[u8]) -> Result<Option<CodeRecord>, StoreError>;
    /// Consumes a live email-verification code and marks its account's address verified (the
    /// change logged, so replicas re-read its sessions): the account, or `None` if the code was
    /// consumed, expired or replaced meanwhile.
    async fn confirm_email(
        &self,
        hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<String>, StoreError>;
    /// Consumes a live reset code and sets the account's password hash (and marks the address
    /// verified: the code reached it): the account, or `None` as for `confirm_email`. Ending the
    /// account's sessions is the caller's (through the `Revoker`).
    async fn reset_password(
        &self,
        hash: &[u8],
        password_hash: &str,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError>;
    /// Sets (at `now`) or clears the address's verified mark and logs the change; false if there
    /// is no such user.
    async fn set_email_verified(
        &self,
        user_id: &str,
        verified: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Whether the user's address is verified (false for an unknown user).
    async fn email_verified(&self, user_id: &str) -> Result<bool, StoreError>;
}

/// Why a code is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    EmailVerification,
    PasswordReset,
}

impl NoticeKind {
    /// The event name in webhooks and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::EmailVerification => "email_verification",
            NoticeKind::PasswordReset => "password_reset",
        }
    }
}

/// A code on its way to an account's owner. `Debug` never shows the code.
#[derive(Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    pub user_id: String,
    pub email: String,
    /// The one-time code, the only copy outside the owner's mailbox.
    pub code: String,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notice")
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Delivers notices off the request path (a bounded queue; `engine/notifier/`).
pub trait Notifier: Send + Sync {
    /// Queues `notice` for delivery, or, with `None` (an address that names no account), takes
    /// a queue slot for nothing: the caller pays the same either way. `Overloaded` when the
    /// queue is full.
    fn submit(&self, notice: Option<Notice>) -> Result<(), AuthError>;
}
