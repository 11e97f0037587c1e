//! Ed25519 signing keys: generation, the in-memory key ring, rotation and the published JWKS.
//!
//! Lifecycle of a key (all instants stored with it): created -> published in the JWKS ->
//! `activates_at`, from when it signs -> `retires_at`, when its successor activates -> `drop_after`,
//! once every token it signed has expired, when it leaves the JWKS. Rotation publishes the
//! successor `activation_delay` before it signs anything, so verifiers that cache the JWKS know it
//! before they meet a token signed with it.
//!
//! [`KeyManager`] is the domain's [`SigningKeys`]: it signs with the ring, and checks signatures
//! of first-seen tokens through the batching [`SignatureChecks`].

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use auth_api::access_token::{self, AccessClaims};
use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use tokio::sync::{Mutex, RwLock};

use super::signatures::{CheckCounts, PublicKey, SignatureChecks};
use crate::domain::{
    AuthError, Timestamp,
    ports::{SigningKeyRecord, SigningKeys, Store},
};

/// How often an unknown `kid` may trigger a reload from the store: a flood of forged `kid`s must
/// not become a flood of database queries.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// A key ready to sign or verify.
pub struct LoadedKey {
    pub kid: String,
    encoding: EncodingKey,
    pub public: Arc<PublicKey>,
    public_x: String,
    activates_at: Timestamp,
    retires_at: Option<Timestamp>,
    drop_after: Option<Timestamp>,
}

/// The keys known at one moment. Immutable: a reload builds a new ring.
pub struct KeyRing {
    keys: Vec<LoadedKey>,
}

impl KeyRing {
    pub fn from_records(records: &[SigningKeyRecord]) -> Result<Self, AuthError> {
        let keys = records
            .iter()
            .map(|record| {
                let public_key = Ed25519KeyPair::from_pkcs8(&record.private_pkcs8)
                    .map_err(|_| {
                        AuthError::Internal(format!("signing key {} is corrupt", record.kid))
                    })?
                    .public_key()
                    .as_ref()
                    .to_vec();
                let public = PublicKey::from_bytes(&public_key).ok_or_else(|| {
                    AuthError::Internal(format!("signing key {} is corrupt", record.kid))
                })?;
                Ok(LoadedKey {
                    kid: record.kid.clone(),
                    encoding: EncodingKey::from_ed_der(&record.private_pkcs8),
                    public: Arc::new(public),
                    public_x: URL_SAFE_NO_PAD.encode(&public_key),
                    activates_at: record.activates_at,
                    retires_at: record.retires_at,
                    drop_after: record.drop_after,
                })
            })
            .collect::<Result<Vec<_>, AuthError>>()?;
        Ok(Self { keys })
    }

    /// The key to sign with now: the most recently activated one.
    pub fn signing_key(&self, now: Timestamp) -> Result<(&str, &EncodingKey), AuthError> {
        self.keys
            .iter()
            .filter(|key| key.activates_at <= now)
            .max_by_key(|key| key.activates_at)
            .map(|key| (key.kid.as_str(), &key.encoding))
            .ok_or_else(|| AuthError::Internal("no active signing key".into()))
    }

    /// The public key for `kid`, if it may still verify tokens.
    pub fn verification_key(&self, kid: &str, now: Timestamp) -> Option<&Arc<PublicKey>> {
        self.keys
            .iter()
            .find(|key| key.kid == kid && key.is_published(now))
            .map(|key| &key.public)
    }

    /// RFC 7517 JSON Web Key Set of every published key (RFC 8037 `OKP` / `Ed25519`).
    pub fn jwks_json(&self, now: Timestamp) -> String {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .filter(|key| key.is_published(now))
            .map(|key| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": key.public_x,
                    "kid": key.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// When the current signing key was activated.
    pub fn newest_activation(&self) -> Option<Timestamp> {
        self.keys.iter().map(|key| key.activates_at).max()
    }
}

impl LoadedKey {
    fn is_published(&self, now: Timestamp) -> bool {
        self.drop_after.is_none_or(|drop_after| now < drop_after)
    }

    pub fn retires_at(&self) -> Option<Timestamp> {
        self.retires_at
    }
}

/// A new Ed25519 key that starts signing at `activates_at`.
pub fn generate_key(
    now: Timestamp,
    activates_at: Timestamp,
) -> Result<SigningKeyRecord, AuthError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| AuthError::Internal("key generation failed".into()))?;
    let public_key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| AuthError::Internal("generated key is unreadable".into()))?
        .public_key()
        .as_ref()
        .to_vec();
    Ok(SigningKeyRecord {
        kid: key_id(&public_key),
        private_pkcs8: pkcs8.as_ref().to_vec(),
        created_at: now,
        activates_at,
        retires_at: None,
        drop_after: None,
    })
}

/// A short key id derived from the public key (the first 48 bits of its SHA-256): short because
/// it travels in every token header, unique enough for the handful of keys alive at once.
fn key_id(public_key: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, public_key);
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..6])
}

/// Owns the key ring of a running service: loads it from the store, reloads it when another
/// process rotates, and rotates.
pub struct KeyManager {
    store: Arc<dyn Store>,
    ring: RwLock<Arc<KeyRing>>,
    last_reload: Mutex<Option<std::time::Instant>>,
    /// Ed25519 checks of first-seen access tokens, batched when they arrive together.
    signatures: Arc<SignatureChecks>,
}

impl KeyManager {
    /// Loads the keys, generating the first one if the store has none.
    pub async fn start(store: Arc<dyn Store>, now: Timestamp) -> Result<Self, AuthError> {
        let mut records = store.list_signing_keys().await?;
        if records.is_empty() {
            store.insert_signing_key(&generate_key(now, now)?).await?;
            records = store.list_signing_keys().await?;
        }
        let ring = KeyRing::from_records(&records)?;
        Ok(Self {
            store,
            ring: RwLock::new(Arc::new(ring)),
            last_reload: Mutex::new(None),
            signatures: SignatureChecks::new(
                std::thread::available_parallelism().map_or(1, |threads| threads.get()),
            ),
        })
    }

    /// Signatures checked, and in how many rounds (their ratio is the mean batch size).
    pub fn signature_counts(&self) -> CheckCounts {
        self.signatures.counts()
    }

    pub async fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().await.clone()
    }

    pub async fn reload(&self) -> Result<(), AuthError> {
        let ring = KeyRing::from_records(&self.store.list_signing_keys().await?)?;
        *self.ring.write().await = Arc::new(ring);
        Ok(())
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
    /// signing then and leave the JWKS once the last token they signed has expired.
    pub async fn rotate(
        &self,
        now: Timestamp,
        activation_delay: Duration,
        token_lifetime: Duration,
    ) -> Result<String, AuthError> {
        let successor = generate_key(now, now.plus(activation_delay))?;
        let drop_after = successor.activates_at.plus(token_lifetime);
        self.store
            .rotate_signing_key(&successor, successor.activates_at, drop_after)
            .await?;
        self.reload().await?;
        Ok(successor.kid)
    }
}

#[async_trait]
impl SigningKeys for KeyManager {
    async fn sign(&self, claims: &AccessClaims, now: Timestamp) -> Result<String, AuthError> {
        let ring = self.ring().await;
        let (kid, key) = ring.signing_key(now)?;
        access_token::sign(claims, kid, key)
            .map_err(|error| AuthError::Internal(format!("signing failed: {error}")))
    }

    async fn trusts(&self, kid: &str, now: Timestamp) -> bool {
        self.ring().await.verification_key(kid, now).is_some()
    }

    async fn check_signature(
        &self,
        kid: &str,
        signing_input: &[u8],
        signature: &[u8; 64],
        now: Timestamp,
    ) -> Result<bool, AuthError> {
        let mut ring = self.ring().await;
        // A kid we do not know may be a key another replica just rotated in.
        if ring.verification_key(kid, now).is_none() && self.reload_for_unknown_kid().await? {
            ring = self.ring().await;
        }
        let Some(key) = ring.verification_key(kid, now) else {
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

    #[test]
    fn the_newest_active_key_signs_and_a_future_key_is_published_early() -> Result<(), AuthError> {
        let now = Timestamp::from_millis(1_000_000);
        let mut old = generate_key(now.minus(MINUTE), now.minus(MINUTE))?;
        let next = generate_key(now, now.plus(MINUTE))?;
        old.retires_at = Some(next.activates_at);
        old.drop_after = Some(next.activates_at.plus(MINUTE * 15));
        let ring = KeyRing::from_records(&[old.clone(), next.clone()])?;

        assert_eq!(ring.signing_key(now)?.0, old.kid);
        assert_eq!(ring.signing_key(now.plus(MINUTE))?.0, next.kid);
        let jwks: serde_json::Value = serde_json::from_str(&ring.jwks_json(now))
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
        assert!(
            !ring.jwks_json(now).contains("\"d\""),
            "private key material in the JWKS"
        );

        let later = now.plus(MINUTE * 17);
        assert!(ring.verification_key(&old.kid, later).is_none());
        assert!(ring.verification_key(&next.kid, later).is_some());
        Ok(())
    }
}
