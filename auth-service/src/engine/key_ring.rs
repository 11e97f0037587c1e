//! The key ring: the signing keys known at one moment, and the rules of which one signs and which
//! are trusted.
//!
//! Lifecycle of a key (all instants stored with it): created (its rotation asked for, which gives
//! it its `seq`) -> published in the JWKS -> `activates_at`, from when it signs -> `retires_at`,
//! when its successor activates -> `drop_after`, once every token it signed has expired, when it
//! leaves the JWKS and its private half is erased. Two ways out of order:
//! - **Superseded**: a rotation asked for while an earlier one was still waiting to activate wins;
//!   the earlier key never signs (the store erases it, and the ring refuses it even if a racing
//!   replica's write left it behind).
//! - **Revoked**: an administrator distrusts a compromised key; it leaves the JWKS at once, tokens
//!   it signed are refused, and a successor signs from the same instant.

use std::{collections::HashSet, sync::Arc};

use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;

use super::signatures::PublicKey;
use crate::domain::{AuthError, Timestamp, ports::SigningKeyRecord};

/// A key ready to sign or verify.
pub struct LoadedKey {
    pub kid: String,
    encoding: EncodingKey,
    pub public: Arc<PublicKey>,
    public_x: String,
    seq: i64,
    activates_at: Timestamp,
    retires_at: Option<Timestamp>,
    drop_after: Option<Timestamp>,
}

/// The keys known at one moment. Immutable: a reload builds a new ring.
pub struct KeyRing {
    /// Keys with their private half, never revoked.
    keys: Vec<LoadedKey>,
    /// Every rotation ever asked for, as (`seq`, when asked), erased keys included.
    requested: Vec<(i64, Timestamp)>,
    /// Keys an administrator revoked.
    revoked: HashSet<String>,
}

impl KeyRing {
    pub fn from_records(records: &[SigningKeyRecord]) -> Result<Self, AuthError> {
        let mut ring = Self {
            keys: Vec::new(),
            requested: records.iter().map(|r| (r.seq, r.created_at)).collect(),
            revoked: HashSet::new(),
        };
        for record in records {
            if record.revoked_at.is_some() {
                ring.revoked.insert(record.kid.clone());
                continue;
            }
            let Some(private) = &record.private_pkcs8 else {
                continue;
            };
            let corrupt = || AuthError::Internal(format!("signing key {} is corrupt", record.kid));
            let public_key = Ed25519KeyPair::from_pkcs8(private)
                .map_err(|_| corrupt())?
                .public_key()
                .as_ref()
                .to_vec();
            let public = PublicKey::from_bytes(&public_key).ok_or_else(corrupt)?;
            ring.keys.push(LoadedKey {
                kid: record.kid.clone(),
                encoding: EncodingKey::from_ed_der(private),
                public: Arc::new(public),
                public_x: URL_SAFE_NO_PAD.encode(&public_key),
                seq: record.seq,
                activates_at: record.activates_at,
                retires_at: record.retires_at,
                drop_after: record.drop_after,
            });
        }
        Ok(ring)
    }

    /// The key to sign with now: of the keys active and still published, the one whose rotation
    /// was asked for last. A key for which a later rotation was asked before it activated never
    /// signs (the last rotation asked for wins, whatever the activation delays).
    pub fn signing_key(&self, now: Timestamp) -> Result<(&str, &EncodingKey), AuthError> {
        self.keys
            .iter()
            .filter(|key| key.activates_at <= now && key.is_published(now))
            .filter(|key| !self.superseded(key))
            .max_by_key(|key| key.seq)
            .map(|key| (key.kid.as_str(), &key.encoding))
            .ok_or_else(|| AuthError::Internal("no active signing key".into()))
    }

    fn superseded(&self, key: &LoadedKey) -> bool {
        self.requested
            .iter()
            .any(|&(seq, asked_at)| seq > key.seq && asked_at < key.activates_at)
    }

    /// The public key for `kid`, if it may still verify tokens.
    pub fn verification_key(&self, kid: &str, now: Timestamp) -> Option<&Arc<PublicKey>> {
        self.keys
            .iter()
            .find(|key| key.kid == kid && key.is_published(now))
            .map(|key| &key.public)
    }

    /// Whether an administrator revoked `kid`.
    pub fn is_revoked(&self, kid: &str) -> bool {
        self.revoked.contains(kid)
    }

    /// Every revoked `kid`, sorted.
    pub fn revoked_kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.revoked.iter().cloned().collect();
        kids.sort();
        kids
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

    /// When the newest key activates (or activated): scheduled rotation counts from it.
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

/// A new Ed25519 key that starts signing at `activates_at` (its `seq` is given by the store).
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
        private_pkcs8: Some(pkcs8.as_ref().to_vec()),
        created_at: now,
        activates_at,
        retires_at: None,
        drop_after: None,
        seq: 0,
        revoked_at: None,
    })
}

/// A short key id derived from the public key (the first 48 bits of its SHA-256): short because
/// it travels in every token header, unique enough for the handful of keys alive at once.
fn key_id(public_key: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, public_key);
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..6])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn key(
        seq: i64,
        asked_at: Timestamp,
        activates_at: Timestamp,
    ) -> Result<SigningKeyRecord, AuthError> {
        Ok(SigningKeyRecord {
            seq,
            ..generate_key(asked_at, activates_at)?
        })
    }

    #[test]
    fn the_newest_active_key_signs_and_a_future_key_is_published_early() -> Result<(), AuthError> {
        let now = Timestamp::from_millis(1_000_000);
        let mut old = key(1, now.minus(MINUTE), now.minus(MINUTE))?;
        let next = key(2, now, now.plus(MINUTE))?;
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

    #[test]
    fn a_pending_key_never_signs_once_a_later_rotation_was_asked_for() -> Result<(), AuthError> {
        // `rotate --activate-in 20s`, then `--activate-in 3s`: the 3 s key wins for good, even if
        // the store still holds the 20 s key's private half (a racing replica's write).
        let now = Timestamp::from_millis(1_000_000);
        let first = key(1, now.minus(MINUTE), now.minus(MINUTE))?;
        let slow = key(2, now, now.plus(Duration::from_secs(20)))?;
        let fast = key(
            3,
            now.plus(Duration::from_secs(1)),
            now.plus(Duration::from_secs(4)),
        )?;
        let ring = KeyRing::from_records(&[first.clone(), slow, fast.clone()])?;
        assert_eq!(
            ring.signing_key(now.plus(Duration::from_secs(2)))?.0,
            first.kid
        );
        assert_eq!(
            ring.signing_key(now.plus(Duration::from_secs(4)))?.0,
            fast.kid
        );
        assert_eq!(ring.signing_key(now.plus(MINUTE))?.0, fast.kid);
        Ok(())
    }

    #[test]
    fn a_revoked_or_erased_key_neither_signs_nor_verifies_nor_is_published() -> Result<(), AuthError>
    {
        let now = Timestamp::from_millis(1_000_000);
        let mut revoked = key(1, now.minus(MINUTE), now.minus(MINUTE))?;
        revoked.revoked_at = Some(now);
        let mut erased = key(2, now.minus(MINUTE), now.minus(MINUTE))?;
        erased.private_pkcs8 = None;
        let ring = KeyRing::from_records(&[revoked.clone(), erased.clone()])?;
        assert!(ring.signing_key(now).is_err());
        for kid in [&revoked.kid, &erased.kid] {
            assert!(ring.verification_key(kid, now).is_none());
            assert!(!ring.jwks_json(now).contains(kid.as_str()));
        }
        assert!(ring.is_revoked(&revoked.kid));
        assert!(!ring.is_revoked(&erased.kid));
        Ok(())
    }
}
