//! Access tokens already verified, by the SHA-256 of their text. A repeat check of the same token
//! skips the signature (the claims of a byte-identical token cannot differ) but never the expiry
//! or the revocation lists: the caller checks those on every hit, so a revocation applies to
//! cached tokens at once. Bounded: at capacity, expired entries go first, then all of them (each
//! is verified again on its next use).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use aws_lc_rs::digest;

use crate::access_token::AccessClaims;

/// The SHA-256 of a token's text: the cache never holds the token itself.
pub type TokenDigest = [u8; 32];

/// What the first, full verification of a token established.
#[derive(Debug)]
pub struct VerifiedToken {
    /// The key that signed it: a hit counts only while that key is still trusted.
    pub kid: String,
    pub claims: AccessClaims,
}

pub struct VerifiedTokens {
    capacity: usize,
    entries: RwLock<HashMap<TokenDigest, Arc<VerifiedToken>>>,
}

impl VerifiedTokens {
    /// `capacity` 0 turns the cache off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub fn digest(token: &str) -> TokenDigest {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        out
    }

    pub fn get(&self, digest: &TokenDigest) -> Option<Arc<VerifiedToken>> {
        if self.capacity == 0 {
            return None;
        }
        self.entries.read().ok()?.get(digest).cloned()
    }

    /// Remembers a token whose signature and claims were just verified.
    pub fn insert(&self, digest: TokenDigest, verified: Arc<VerifiedToken>, now_seconds: i64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, verified| verified.claims.exp > now_seconds);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(digest, verified);
    }

    /// Forgets everything (the signing keys changed).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |entries| entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            kid: "k1".into(),
            claims: AccessClaims {
                iss: "auth".into(),
                sub: "user".into(),
                aud: "api".into(),
                sid: "session".into(),
                iat: 0,
                exp,
                jti: "j".into(),
                roles: Vec::new(),
                nbf: None,
            },
        })
    }

    #[test]
    fn a_token_is_found_by_its_exact_text_only() {
        let cache = VerifiedTokens::new(10);
        cache.insert(VerifiedTokens::digest("a.b.c"), claims(100), 0);
        assert!(cache.get(&VerifiedTokens::digest("a.b.c")).is_some());
        assert!(cache.get(&VerifiedTokens::digest("a.b.c ")).is_none());
        assert!(cache.get(&VerifiedTokens::digest("a.b.C")).is_none());
    }

    #[test]
    fn at_capacity_expired_entries_go_first_then_everything() {
        let cache = VerifiedTokens::new(2);
        cache.insert(VerifiedTokens::digest("old"), claims(10), 0);
        cache.insert(VerifiedTokens::digest("live"), claims(1000), 0);
        cache.insert(VerifiedTokens::digest("new"), claims(1000), 50);
        assert!(cache.get(&VerifiedTokens::digest("old")).is_none());
        assert!(cache.get(&VerifiedTokens::digest("live")).is_some());
        assert_eq!(cache.len(), 2);
        cache.insert(VerifiedTokens::digest("newer"), claims(1000), 50);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = VerifiedTokens::new(0);
        cache.insert(VerifiedTokens::digest("a"), claims(100), 0);
        assert!(cache.get(&VerifiedTokens::digest("a")).is_none());
    }
}
