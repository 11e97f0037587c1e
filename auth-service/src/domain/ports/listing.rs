//! What account administration asks of the store: a filtered page of accounts, a position in a
//! listing (keyset pagination), and what became of each row of an import.

use crate::domain::Timestamp;

/// A position in a listing ordered by `(created_at, id)`: the last row of the previous page.
/// Rows are found by comparing with it, never by counting (an OFFSET would skip or repeat rows
/// when accounts are added or deleted between pages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyset {
    pub created_at: Timestamp,
    pub id: String,
}

/// Which accounts `Store::list_users` returns. Deleted accounts and service clients never.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Only accounts whose email key (lower-cased) starts with this; empty: any.
    pub email_key_prefix: String,
    /// Only accounts with this role; empty: any.
    pub role: String,
    /// Only suspended (`Some(true)`) or only active (`Some(false)`) accounts.
    pub suspended: Option<bool>,
}

/// What `Store::import_users` did with one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    Inserted,
    /// An account with this email (compared by key) exists: nothing written.
    DuplicateEmail,
    /// Another account (or a deleted account's tombstone, or a service client) holds this id.
    IdTaken,
}
