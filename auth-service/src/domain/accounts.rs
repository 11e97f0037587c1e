//! Email addresses and roles: how an account is named and what it may do.

use unicode_normalization::UnicodeNormalization;

use super::AuthError;

const MAX_EMAIL_BYTES: usize = 254;

/// An email address as given, plus the key it is unique under (case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub address: String,
    pub key: String,
}

impl Email {
    /// Accepts `local@domain.tld` without whitespace, control, bidirectional or invisible
    /// characters, in Unicode NFC (so one address typed two ways is one account). Deliberately
    /// loose (RFC 5321 allows far more than any form validator); the point is to reject what
    /// cannot be an address, or would show as another one, not to prove that one exists.
    pub fn parse(input: &str) -> Result<Self, AuthError> {
        let address = normalized(input);
        let address = address.as_str();
        let valid = address.len() <= MAX_EMAIL_BYTES
            && !address
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_invisible_or_bidi(c))
            && match address.rsplit_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !local.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if !valid {
            return Err(AuthError::InvalidEmail);
        }
        Ok(Self {
            address: address.to_owned(),
            key: address.to_lowercase(),
        })
    }

    /// The lookup key for a login attempt. Never fails: a malformed address simply matches no
    /// account, and login answers it like any other wrong credential.
    pub fn lookup_key(input: &str) -> String {
        normalized(input).to_lowercase()
    }
}

/// Trimmed, in Unicode Normalization Form C.
fn normalized(input: &str) -> String {
    input.trim().nfc().collect()
}

/// Characters that change how an address is displayed without showing themselves: the
/// bidirectional controls (Trojan Source, CVE-2021-42574) and the zero-width ones, which would
/// let `admin@example.com` and a look-alike be two accounts.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{180E}' | '\u{00AD}')
}

/// Roles are stored as one space-separated string; a role name has no spaces.
pub fn parse_roles(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_owned).collect()
}

pub fn format_roles(roles: &[String]) -> Result<String, AuthError> {
    if roles
        .iter()
        .any(|role| role.is_empty() || role.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(AuthError::InvalidArgument("a role name must be one word"));
    }
    Ok(roles.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_typed_in_two_unicode_forms_is_one_account() -> Result<(), AuthError> {
        // "é" precomposed (NFC) and as "e" + combining acute (NFD).
        let composed = Email::parse("jos\u{e9}@example.com")?;
        let decomposed = Email::parse("jose\u{301}@example.com")?;
        assert_eq!(composed.key, decomposed.key);
        assert_eq!(decomposed.address, "jos\u{e9}@example.com");
        assert_eq!(Email::lookup_key("JOSE\u{301}@example.com"), composed.key);
        Ok(())
    }

    #[test]
    fn bidirectional_and_zero_width_characters_are_refused() {
        for sneaky in [
            "admin\u{200B}@example.com",
            "ad\u{200D}min@example.com",
            "\u{202E}moc.elpmaxe@nimda",
            "admin@exa\u{2066}mple.com",
            "\u{FEFF}admin@example.com",
            "admin\u{00AD}@example.com",
        ] {
            assert!(
                matches!(Email::parse(sneaky), Err(AuthError::InvalidEmail)),
                "{sneaky:?} was accepted"
            );
        }
    }

    #[test]
    fn emails_are_unique_regardless_of_case() -> Result<(), AuthError> {
        let email = Email::parse(" Alice@Example.COM ")?;
        assert_eq!(email.address, "Alice@Example.COM");
        assert_eq!(email.key, "alice@example.com");
        assert_eq!(Email::lookup_key("ALICE@example.com"), email.key);
        Ok(())
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "al ice@example.com",
            "alice@example.com.",
            "a@b@example.com",
            &format!("{}@example.com", "a".repeat(250)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn roles_round_trip_through_storage() -> Result<(), AuthError> {
        let roles = vec!["admin".to_owned(), "billing".to_owned()];
        assert_eq!(parse_roles(&format_roles(&roles)?), roles);
        assert!(format_roles(&["two words".to_owned()]).is_err());
        Ok(())
    }
}
