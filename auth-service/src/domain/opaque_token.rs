//! Opaque credentials (refresh and session tokens) and identifiers.
//!
//! A token is 256 random bits, base64url without padding (43 characters). The service keeps only
//! its SHA-256, so a database leak yields nothing a client could present; a presented token is
//! matched by looking up its hash and, where a stored hash is compared, in constant time.

use aws_lc_rs::{digest, rand::SecureRandom, rand::SystemRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

use super::AuthError;

const TOKEN_BYTES: usize = 32;
const TOKEN_CHARS: usize = 43;

/// A freshly minted token: the text goes to the client once, the hash to the store.
pub struct OpaqueToken {
    pub text: String,
    pub hash: TokenHash,
}

/// SHA-256 of a token's 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub Vec<u8>);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

impl TokenHash {
    /// Compares without an early exit, so timing reveals nothing about how much matched.
    pub fn matches(&self, other: &[u8]) -> bool {
        self.0.as_slice().ct_eq(other).into()
    }
}

impl OpaqueToken {
    pub fn generate() -> Result<Self, AuthError> {
        let bytes = random_bytes::<TOKEN_BYTES>()?;
        Ok(Self {
            text: URL_SAFE_NO_PAD.encode(bytes),
            hash: hash_bytes(&bytes),
        })
    }

    /// The hash of a presented token, or `TokenInvalid` if it cannot be one of ours.
    pub fn hash_of(presented: &str) -> Result<TokenHash, AuthError> {
        if presented.len() != TOKEN_CHARS {
            return Err(AuthError::TokenInvalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(presented)
            .map_err(|_| AuthError::TokenInvalid)?;
        Ok(hash_bytes(&bytes))
    }

    /// Whether `presented` has the shape of an opaque token (as opposed to a JWT).
    pub fn looks_like(presented: &str) -> bool {
        presented.len() == TOKEN_CHARS && !presented.contains('.')
    }
}

fn hash_bytes(bytes: &[u8]) -> TokenHash {
    TokenHash(digest::digest(&digest::SHA256, bytes).as_ref().to_vec())
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Internal("system random generator failed".into()))?;
    Ok(bytes)
}

/// A new identifier for a user or session: 96 random bits, 16 base64url characters. Identifiers
/// are not secrets (a session id travels in every access token), only unique; keeping them short
/// keeps access tokens short.
pub fn new_id() -> Result<String, AuthError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<12>()?))
}

/// Whether `text` has the shape of an identifier this service issues (base64url, short). Input
/// that does not is refused before it reaches the database: it cannot name anything, and some
/// bytes (NUL) are errors to PostgreSQL rather than misses.
pub fn is_identifier(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A JWT `jti`: 72 random bits, unique among the tokens live at one time.
pub fn new_token_id() -> Result<String, AuthError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<9>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_hashes_to_its_stored_hash() -> Result<(), AuthError> {
        let token = OpaqueToken::generate()?;
        assert_eq!(token.text.len(), TOKEN_CHARS);
        assert!(OpaqueToken::looks_like(&token.text));
        assert_eq!(OpaqueToken::hash_of(&token.text)?, token.hash);
        assert!(token.hash.matches(&OpaqueToken::hash_of(&token.text)?.0));
        Ok(())
    }

    #[test]
    fn malformed_tokens_are_rejected_before_any_lookup() {
        for bad in ["", "short", &"a".repeat(44), &"*".repeat(43)] {
            assert!(matches!(
                OpaqueToken::hash_of(bad),
                Err(AuthError::TokenInvalid)
            ));
        }
    }

    #[test]
    fn identifiers_are_short_and_distinct() -> Result<(), AuthError> {
        let (a, b) = (new_id()?, new_id()?);
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert_eq!(new_token_id()?.len(), 12);
        Ok(())
    }
}
