//! Ed25519 signing keys of a running service: [`KeyManager`] loads the ring (`key_ring.rs` holds
//! its rules), reloads it when another process rotates, rotates, revokes a compromised key, and
//! erases the private half of every key whose tokens have all expired.
//!
//! Rotation publishes the successor `activation_delay` before it signs anything, so verifiers
//! that cache the JWKS know it before they meet a token signed with it.
//!
//! [`KeyManager`] is the domain's [`SigningKeys`]: it signs with the ring, and checks signatures
//! of first-seen tokens through the batching [`SignatureChecks`].

use std::{collections::HashSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use auth_api::access_token::{self, AccessClaims};
use tokio::sync::{Mutex, RwLock};

pub use super::key_ring::{KeyRing, LoadedKey, generate_key};
use super::{
    key_seal::KeySeal,
    keys_at_rest,
    signatures::{CheckCounts, SignatureChecks},
};
use crate::domain::{
    AuthError, Timestamp,
    ports::{KeyRotation, KeyRotationOutcome, SigningKeyRecord, SigningKeys, Store, StoreError},
};

/// How often an unknown `kid` may trigger a reload from the store: a flood of forged `kid`s must
/// not become a flood of database queries.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Owns the key ring of a running service: loads it from the store, reloads it when another
/// process rotates, and rotates.
pub struct KeyManager {
    store: Arc<dyn Store>,
    ring: RwLock<Arc<KeyRing>>,
    last_reload: Mutex<Option<std::time::Instant>>,
    /// Ed25519 checks of first-seen access tokens, batched when they arrive together.
    signatures: Arc<SignatureChecks>,
    /// Keys another replica revoked, refused before the ring is re-read.
    distrusted: std::sync::RwLock<HashSet<String>>,
    /// Seals private halves before they are written (`AUTH_KEY_ENCRYPTION_KEY_FILE`).
    seal: Option<Arc<KeySeal>>,
}

impl KeyManager {
    /// Loads the keys (erasing expired private halves), generating one that signs at once if
    /// none can. Private halves are stored in plaintext: see [`KeyManager::start_sealed`].
    pub async fn start(store: Arc<dyn Store>, now: Timestamp) -> Result<Self, AuthError> {
        Self::start_sealed(store, now, None).await
    }

    /// Like [`KeyManager::start`], sealing every private half it writes with `seal` (and
    /// opening sealed ones it reads). Run [`keys_at_rest::prepare`] first.
    pub async fn start_sealed(
        store: Arc<dyn Store>,
        now: Timestamp,
        seal: Option<Arc<KeySeal>>,
    ) -> Result<Self, AuthError> {
        store.erase_expired_signing_keys(now).await?;
        let opened = |records| keys_at_rest::open_records(records, seal.as_deref());
        let mut ring = KeyRing::from_records(&opened(store.list_signing_keys().await?)?)?;
        if ring.signing_key(now).is_err() {
            let key = keys_at_rest::sealed(generate_key(now, now)?, seal.as_deref())?;
            match store.insert_signing_key(&key).await {
                // Another replica starting at the same instant inserted one first: use it.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
            ring = KeyRing::from_records(&opened(store.list_signing_keys().await?)?)?;
        }
        Ok(Self {
            store,
            ring: RwLock::new(Arc::new(ring)),
            last_reload: Mutex::new(None),
            signatures: SignatureChecks::new(
                std::thread::available_parallelism().map_or(1, |threads| threads.get()),
            ),
            distrusted: std::sync::RwLock::new(HashSet::new()),
            seal,
        })
    }

    fn open(&self, records: Vec<SigningKeyRecord>) -> Result<Vec<SigningKeyRecord>, AuthError> {
        Ok(keys_at_rest::open_records(records, self.seal.as_deref())?)
    }

    /// Signatures checked, and in how many rounds (their ratio is the mean batch size).
    pub fn signature_counts(&self) -> CheckCounts {
        self.signatures.counts()
    }

    pub async fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().await.clone()
    }

    /// Re-reads the keys, first erasing the private half of every key whose tokens have all
    /// expired (and so leaving the JWKS).
    pub async fn reload(&self) -> Result<(), AuthError> {
        let erased = self
            .store
            .erase_expired_signing_keys(Timestamp::now())
            .await?;
        if erased > 0 {
            tracing::info!(erased, "private halves of expired signing keys erased");
        }
        let ring = KeyRing::from_records(&self.open(self.store.list_signing_keys().await?)?)?;
        *self.ring.write().await = Arc::new(ring);
        Ok(())
    }

    /// Refuses `kid` from now on (another replica revoked it), before the ring is re-read.
    pub fn distrust(&self, kid: &str) {
        if let Ok(mut distrusted) = self.distrusted.write() {
            distrusted.insert(kid.to_owned());
        }
    }

    fn is_distrusted(&self, kid: &str) -> bool {
        // A poisoned lock means a panic mid-update: refuse rather than guess.
        self.distrusted
            .read()
            .map_or(true, |distrusted| distrusted.contains(kid))
    }

    /// Reloads after meeting an unknown `kid`, at most once per interval.
    pub async fn reload_for_unknown_kid(&self) -> Result<bool, AuthError> {
        let mut last = self.last_reload.lock().await;
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL) {
            return Ok(false);
        }
        *last = Some(std::time::Instant::now());
        drop(last);
        self.reload().await?;
        Ok(true)
    }

    /// Publishes a new key that signs from `now + activation_delay`; the current keys stop
    /// signing then and leave the JWKS once the last token they signed has expired. A key still
    /// waiting from an earlier rotation is superseded: it never signs.
    pub async fn rotate(
        &self,
        now: Timestamp,
        activation_delay: Duration,
        token_lifetime: Duration,
    ) -> Result<String, AuthError> {
        let activates_at = now.plus(activation_delay);
        let (kid, _) = self
            .write_rotation(now, activates_at, activates_at.plus(token_lifetime), None)
            .await?;
        self.reload().await?;
        Ok(kid)
    }

    /// Generates the successor and writes the rotation; once more with a fresh key if a racing
    /// rotation took the same `seq` (or, once in 2^48, the same kid).
    async fn write_rotation(
        &self,
        now: Timestamp,
        activates_at: Timestamp,
        drop_after: Timestamp,
        revoke: Option<&str>,
    ) -> Result<(String, KeyRotationOutcome), AuthError> {
        let mut attempts = 0;
        loop {
            let successor =
                keys_at_rest::sealed(generate_key(now, activates_at)?, self.seal.as_deref())?;
            let rotation = KeyRotation {
                successor: &successor,
                now,
                drop_after,
                revoke,
            };
            match self.store.rotate_signing_key(&rotation).await {
                Ok(outcome) => return Ok((successor.kid, outcome)),
                Err(StoreError::Conflict) if attempts == 0 => attempts += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Distrusts `kid` at once (out of the JWKS, its tokens refused, its private half erased)
    /// and makes a new key sign from `now`. `None` if it was revoked before (nothing changes).
    pub async fn revoke(
        &self,
        kid: &str,
        now: Timestamp,
        token_lifetime: Duration,
    ) -> Result<Option<String>, AuthError> {
        let (successor, outcome) = self
            .write_rotation(now, now, now.plus(token_lifetime), Some(kid))
            .await?;
        self.reload().await?;
        match outcome {
            KeyRotationOutcome::Rotated => Ok(Some(successor)),
            KeyRotationOutcome::AlreadyRevoked => Ok(None),
            KeyRotationOutcome::UnknownKid => Err(AuthError::SigningKeyNotFound),
        }
    }
}

#[async_trait]
impl SigningKeys for KeyManager {
    async fn sign(&self, claims: &AccessClaims, now: Timestamp) -> Result<String, AuthError> {
        let mut ring = self.ring().await;
        if ring
            .signing_key(now)
            .is_ok_and(|(kid, _)| self.is_distrusted(kid))
        {
            // Revoked by another replica: its successor is in the store already.
            self.reload().await?;
            ring = self.ring().await;
        }
        let (kid, key) = ring.signing_key(now)?;
        if self.is_distrusted(kid) {
            return Err(AuthError::Internal("the signing key was revoked".into()));
        }
        access_token::sign(claims, kid, key)
            .map_err(|error| AuthError::Internal(format!("signing failed: {error}")))
    }

    async fn trusts(&self, kid: &str, now: Timestamp) -> bool {
        !self.is_distrusted(kid) && self.ring().await.verification_key(kid, now).is_some()
    }

    async fn check_signature(
        &self,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8; 64],
        now: Timestamp,
    ) -> Result<bool, AuthError> {
        if self.is_distrusted(kid) {
            return Err(AuthError::SigningKeyRevoked);
        }
        let mut ring = self.ring().await;
        // A kid we do not know may be a key another replica just rotated in.
        if ring.verification_key(kid, now).is_none() && self.reload_for_unknown_kid().await? {
            ring = self.ring().await;
        }
        let Some(key) = ring.verification_key(kid, now) else {
            if ring.is_revoked(kid) {
                return Err(AuthError::SigningKeyRevoked);
            }
            return Ok(false);
        };
        Ok(self.signatures.verify(signing_input, signature, key).await)
    }

    async fn jwks_json(&self, now: Timestamp) -> String {
        self.ring().await.jwks_json(now)
    }

    async fn rotate(
        &self,
        now: Timestamp,
        activation_delay: Duration,
        token_lifetime: Duration,
    ) -> Result<String, AuthError> {
        KeyManager::rotate(self, now, activation_delay, token_lifetime).await
    }

    async fn revoke(
        &self,
        kid: &str,
        now: Timestamp,
        token_lifetime: Duration,
    ) -> Result<Option<String>, AuthError> {
        KeyManager::revoke(self, kid, now, token_lifetime).await
    }

    async fn revoked_kids(&self) -> Vec<String> {
        self.ring().await.revoked_kids()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_kid_reloads_the_keys_at_most_once_a_second() -> Result<(), AuthError> {
        let store = Arc::new(crate::domain::testing::MemoryStore::default());
        let keys = KeyManager::start(store.clone(), Timestamp::from_millis(1_000)).await?;
        // A flood of forged `kid`s is one database read a second, not one a token.
        assert!(keys.reload_for_unknown_kid().await?);
        assert!(!keys.reload_for_unknown_kid().await?);
        assert!(!keys.reload_for_unknown_kid().await?);
        Ok(())
    }

    #[tokio::test]
    async fn a_key_published_by_another_process_is_found_by_its_kid() -> Result<(), AuthError> {
        let store = Arc::new(crate::domain::testing::MemoryStore::default());
        let now = Timestamp::from_millis(1_000);
        let keys = KeyManager::start(store.clone(), now).await?;
        let other = KeyManager::start(store.clone(), now).await?;
        let kid = other.rotate(now, Duration::ZERO, MINUTE).await?;
        assert!(!SigningKeys::trusts(&keys, &kid, now).await);
        // The signature check meets the unknown kid and reloads before it decides.
        let claims = AccessClaims {
            iss: "auth".into(),
            sub: "u".into(),
            aud: "api".into(),
            sid: "s".into(),
            iat: now.unix_seconds(),
            exp: now.unix_seconds() + 60,
            jti: "j".into(),
            roles: Vec::new(),
            nbf: None,
            auth_time: None,
            exchanged: None,
            service: None,
            act: None,
            email_verified: None,
        };
        let token = other.sign(&claims, now).await?;
        let signed = access_token::split(&token).map_err(AuthError::from)?;
        assert_eq!(signed.kid, kid);
        assert!(
            keys.check_signature(&signed.kid, signed.signing_input(), signed.signature(), now)
                .await?
        );
        Ok(())
    }

    const MINUTE: Duration = Duration::from_secs(60);
}
