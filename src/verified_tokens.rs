//! Access tokens already verified, by the SHA-256 of their text. A repeat check of the same token
//! skips the signature (the claims of a byte-identical token cannot differ) but never the expiry
//! or the revocation lists: the caller checks those on every hit, so a revocation applies to
//! cached tokens at once. Bounded: at capacity the oldest entry goes (tokens are issued with one
//! lifetime, so that is also about the first to expire); an evicted token is verified again on
//! its next use. Used by [`crate::LocalVerifier`] and by the auth service for every check of an
//! access token (`Verify`, `ExchangeToken`, ext_authz).

use std::{
    collections::{HashMap, VecDeque},
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
    entries: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Bumped by every [`VerifiedTokens::clear`].
    generation: u64,
    by_digest: HashMap<TokenDigest, Arc<VerifiedToken>>,
    /// Insertion order, for evicting the oldest.
    order: VecDeque<TokenDigest>,
}

impl VerifiedTokens {
    /// `capacity` 0 turns the cache off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: RwLock::new(Entries::default()),
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
        self.entries.read().ok()?.by_digest.get(digest).cloned()
    }

    /// Remembers a token whose signature and claims were just verified.
    pub fn insert(&self, digest: TokenDigest, verified: Arc<VerifiedToken>) {
        self.insert_unless_cleared(self.generation(), digest, verified);
    }

    /// Where the cache is in its clears: take it before a verification begins, and hand it to
    /// [`VerifiedTokens::insert_unless_cleared`] with the verdict.
    pub fn generation(&self) -> u64 {
        self.entries.read().map_or(0, |entries| entries.generation)
    }

    /// Remembers a verdict unless the cache was cleared since `generation` was taken: a clear
    /// means the keys changed (one may have been withdrawn) while the token was being verified
    /// against the old ones.
    pub fn insert_unless_cleared(
        &self,
        generation: u64,
        digest: TokenDigest,
        verified: Arc<VerifiedToken>,
    ) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.generation != generation {
            return;
        }
        if entries.by_digest.contains_key(&digest) {
            return;
        }
        while entries.by_digest.len() >= self.capacity {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.by_digest.remove(&oldest);
        }
        entries.by_digest.insert(digest, verified);
        entries.order.push_back(digest);
    }

    /// Forgets everything (the signing keys changed).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            let generation = entries.generation.wrapping_add(1);
            *entries = Entries {
                generation,
                ..Entries::default()
            };
        }
    }

    pub fn len(&self) -> usize {
        self.entries
            .read()
            .map_or(0, |entries| entries.by_digest.len())
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
                auth_time: None,
                exchanged: None,
                service: None,
                act: None,
                email_verified: None,
            },
        })
    }

    #[test]
    fn a_token_is_found_by_its_exact_text_only() {
        let cache = VerifiedTokens::new(10);
        cache.insert(VerifiedTokens::digest("a.b.c"), claims(100));
        assert!(cache.get(&VerifiedTokens::digest("a.b.c")).is_some());
        assert!(cache.get(&VerifiedTokens::digest("a.b.c ")).is_none());
        assert!(cache.get(&VerifiedTokens::digest("a.b.C")).is_none());
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest_first() {
        let cache = VerifiedTokens::new(2);
        let key = VerifiedTokens::digest;
        cache.insert(key("a"), claims(100));
        cache.insert(key("b"), claims(100));
        cache.insert(key("a"), claims(100));
        cache.insert(key("c"), claims(100));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("a")).is_none());
        assert!(cache.get(&key("b")).is_some());
        assert!(cache.get(&key("c")).is_some());
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn a_verdict_reached_across_a_clear_is_not_remembered() {
        let cache = VerifiedTokens::new(10);
        let generation = cache.generation();
        // The keys are replaced (a key withdrawn) while the token is being verified.
        cache.clear();
        cache.insert_unless_cleared(generation, VerifiedTokens::digest("a"), claims(100));
        assert!(cache.get(&VerifiedTokens::digest("a")).is_none());
        cache.insert_unless_cleared(cache.generation(), VerifiedTokens::digest("a"), claims(100));
        assert!(cache.get(&VerifiedTokens::digest("a")).is_some());
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = VerifiedTokens::new(0);
        cache.insert(VerifiedTokens::digest("a"), claims(100));
        assert!(cache.get(&VerifiedTokens::digest("a")).is_none());
    }
}
