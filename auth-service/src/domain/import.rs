//! Accounts brought over from another application (`ImportUsers`, `authctl user import`): each
//! row is checked here like a new account (the email, the roles, an id of our shape) except the
//! password, which arrives already hashed: a bcrypt (`$2a$`, `$2b$`, `$2y$`) or argon2 PHC
//! string the hashing machinery can verify ([`PasswordHashing::importable`]). A bcrypt hash is
//! replaced by argon2id at the account's first successful login (`login.rs`, `needs_rehash`).
//!
//! A batch is written in one transaction; a row whose email (or id) is already taken is skipped,
//! so running the same import twice changes nothing the second time.
//!
//! [`PasswordHashing::importable`]: super::ports::PasswordHashing::importable

use super::{
    AuthError, Timestamp,
    accounts::{Email, format_roles},
    opaque_token::{is_identifier, new_id},
    ports::{ImportOutcome, PasswordHashing, UserRecord},
};

/// At most this many rows per `ImportUsers` call (one transaction each).
pub const MAX_IMPORT_BATCH: usize = 1000;

/// One account to import, as the exporting application had it.
#[derive(Clone)]
pub struct ImportRow {
    pub email: String,
    /// Kept when given (an id of our shape: base64url, 1 to 64 characters); else a new one.
    pub id: Option<String>,
    pub roles: Vec<String>,
    pub password_hash: String,
}

impl std::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRow")
            .field("id", &self.id)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// What became of one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowOutcome {
    Imported {
        user_id: String,
    },
    /// An account with this email exists (an earlier run of the same import, or another row).
    Duplicate,
    /// Not imported; why, in words that never repeat the row's values.
    Refused(&'static str),
}

/// The account a row becomes, or why it cannot.
pub fn check_row(
    row: ImportRow,
    hasher: &dyn PasswordHashing,
    now: Timestamp,
) -> Result<UserRecord, &'static str> {
    let email = Email::parse(&row.email).map_err(|_| "invalid email address")?;
    let roles = format_roles(&row.roles).map_err(|_| "a role name must be one word")?;
    let id = match row.id {
        Some(id) if is_identifier(&id) => id,
        Some(_) => return Err("the id must be 1 to 64 letters, digits, '-' or '_'"),
        None => new_id().map_err(|_| "no random id could be drawn")?,
    };
    hasher.importable(&row.password_hash)?;
    Ok(UserRecord {
        id,
        email: email.address,
        email_key: email.key,
        password_hash: row.password_hash,
        roles,
        created_at: now,
        suspended_at: None,
    })
}

/// The outcome of each row, given the store's outcome for each account that passed the checks.
pub fn outcomes(
    checked: Vec<Result<UserRecord, &'static str>>,
    stored: Vec<ImportOutcome>,
) -> Result<Vec<RowOutcome>, AuthError> {
    let mut stored = stored.into_iter();
    checked
        .into_iter()
        .map(|row| match row {
            Err(reason) => Ok(RowOutcome::Refused(reason)),
            Ok(user) => match stored.next() {
                Some(ImportOutcome::Inserted) => Ok(RowOutcome::Imported { user_id: user.id }),
                Some(ImportOutcome::DuplicateEmail) => Ok(RowOutcome::Duplicate),
                Some(ImportOutcome::IdTaken) => Ok(RowOutcome::Refused(
                    "the id belongs to another account (ids are never reused)",
                )),
                None => Err(AuthError::Internal(
                    "the store answered fewer import outcomes than rows".into(),
                )),
            },
        })
        .collect()
}
