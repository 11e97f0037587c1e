//! What a new password must be, per NIST SP 800-63B section 5.1.1.2: long enough (a configurable
//! minimum of at least 8 characters), at most 1024 bytes and never truncated, with no composition
//! rules, and not one of the most common passwords.
//!
//! The list is `data/common-passwords.txt` (source and licence in its header): compiled into the
//! binary and turned into a set once, on first use. Its entries are lowercased, so a password is
//! compared lowercased too ("Password1" is as common as "password1").

use std::{collections::HashSet, sync::LazyLock};

use super::AuthError;

/// NIST SP 800-63B: at least 8 characters; we accept up to 1024 bytes and never truncate.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// Whether `password` is on the shipped list of common passwords (compared lowercased).
pub fn is_common(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().as_str())
}

/// Checks a new password (registration, password change, `user create`).
pub fn check_new_password(password: &str, min_chars: usize) -> Result<(), AuthError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::PasswordTooLong);
    }
    if password.chars().count() < min_chars.max(MIN_PASSWORD_CHARS) {
        return Err(AuthError::WeakPassword(
            "the password is shorter than the minimum length",
        ));
    }
    if is_common(password) {
        return Err(AuthError::CommonPassword);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_loaded_and_compared_lowercased() {
        assert!(COMMON_PASSWORDS.len() > 5000);
        assert!(is_common("password1"));
        assert!(is_common("PASSWORD1"));
        assert!(!is_common("correct horse battery"));
    }

    #[test]
    fn a_new_password_needs_the_minimum_length_and_must_not_be_common() {
        assert!(matches!(
            check_new_password("sevench", 8),
            Err(AuthError::WeakPassword(_))
        ));
        assert!(matches!(
            check_new_password("ninechars", 12),
            Err(AuthError::WeakPassword(_))
        ));
        // The configured minimum never goes below 8.
        assert!(check_new_password("éééééééé", 4).is_ok());
        assert!(matches!(
            check_new_password("qwertyuiop", 8),
            Err(AuthError::CommonPassword)
        ));
        assert!(matches!(
            check_new_password(&"a".repeat(1025), 8),
            Err(AuthError::PasswordTooLong)
        ));
        assert!(check_new_password(&"a".repeat(1024), 8).is_ok());
    }
}
