//! Signing keys at rest: the private half of every signing key is sealed with AES-256-GCM
//! (aws-lc-rs) under a key-encryption key read from `AUTH_KEY_ENCRYPTION_KEY_FILE` before it is
//! written to the database, and opened when the ring is loaded. A database dump or backup then
//! holds no key that can sign a token.
//!
//! A sealed value is `MAGIC` (4 bytes, versioned) ‖ the wrapping key's id (8 bytes: a digest of
//! the key, never the key) ‖ a random 96-bit nonce ‖ ciphertext ‖ tag. The key id is the
//! associated data (with the format version), so a sealed value moved to another row does not
//! open. A plaintext row (written before the setting existed) is a PKCS#8 DER document, which
//! starts with `0x30`: the two are told apart by the prefix.

use std::path::{Path, PathBuf};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    digest,
};
use base64::{Engine, engine::general_purpose::STANDARD};

/// Format version 1 of a sealed private key.
const MAGIC: &[u8; 4] = b"AKS1";
const KEY_ID_LEN: usize = 8;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;
const SETTING: &str = "AUTH_KEY_ENCRYPTION_KEY_FILE";

#[derive(Debug, thiserror::Error)]
pub enum KeySealError {
    #[error("{SETTING} ({path}): cannot read the key file: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "{SETTING} ({path}): expected a 256-bit key: 32 raw bytes, 64 hex digits or 32 bytes in base64"
    )]
    Malformed { path: PathBuf },
    #[error(
        "{SETTING}: signing key {kid} in the database was sealed with key-encryption key {sealed_with}, \
         but the configured file holds key {configured}; no row was changed (point the setting at the \
         key the rows were sealed with, or run `auth-service keys rewrap` with it)"
    )]
    WrongKey {
        kid: String,
        sealed_with: String,
        configured: String,
    },
    #[error(
        "{SETTING} is not set, but the signing keys in the database are sealed (signing key {kid}, \
         key-encryption key {sealed_with}); set it to the key file they were sealed with"
    )]
    Missing { kid: String, sealed_with: String },
    #[error("{SETTING}: signing key {kid} does not open with key {key_id}: the row is damaged")]
    Damaged { kid: String, key_id: String },
    #[error("{SETTING}: sealing failed")]
    Seal,
    #[error(
        "{SETTING}: the signing keys changed while they were being sealed; nothing was written, retry"
    )]
    Raced,
    #[error("{SETTING}: {0}")]
    Store(#[from] crate::domain::ports::StoreError),
}

/// A key-encryption key.
pub struct KeySeal {
    key: LessSafeKey,
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for KeySeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySeal")
            .field("id", &self.id_text())
            .finish_non_exhaustive()
    }
}

impl KeySeal {
    /// Reads a key file: exactly 32 raw bytes, or (surrounding whitespace ignored) 64 hex
    /// digits or the base64 of 32 bytes (`openssl rand -base64 32`, a Kubernetes secret).
    pub fn from_file(path: &Path) -> Result<Self, KeySealError> {
        let bytes = std::fs::read(path).map_err(|error| KeySealError::Unreadable {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        parse_key(&bytes)
            .map(|key| Self::from_bytes(&key))
            .ok_or_else(|| KeySealError::Malformed {
                path: path.to_owned(),
            })?
    }

    pub fn from_bytes(key: &[u8; 32]) -> Result<Self, KeySealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| KeySealError::Seal)?;
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(b"auth-service key-encryption key id\0");
        context.update(key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&context.finish().as_ref()[..KEY_ID_LEN]);
        Ok(Self {
            key: LessSafeKey::new(unbound),
            id,
        })
    }

    /// The key's id as printed in messages (a digest: it reveals nothing of the key).
    pub fn id_text(&self) -> String {
        hex(&self.id)
    }

    /// Seals the private half of signing key `kid`, with a fresh random nonce.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeySealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeySealError::Seal)?;
        let mut sealed = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&self.id);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(&self.id, kid)),
                &mut body,
            )
            .map_err(|_| KeySealError::Seal)?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// Opens what [`seal`](Self::seal) made for `kid`.
    pub fn open(&self, kid: &str, stored: &[u8]) -> Result<Vec<u8>, KeySealError> {
        let Some(sealed_with) = sealed_with(stored) else {
            return Err(KeySealError::Damaged {
                kid: kid.to_owned(),
                key_id: self.id_text(),
            });
        };
        if sealed_with != self.id {
            return Err(KeySealError::WrongKey {
                kid: kid.to_owned(),
                sealed_with: hex(&sealed_with),
                configured: self.id_text(),
            });
        }
        let damaged = || KeySealError::Damaged {
            kid: kid.to_owned(),
            key_id: self.id_text(),
        };
        let nonce = Nonce::try_assume_unique_for_key(&stored[MAGIC.len() + KEY_ID_LEN..HEADER_LEN])
            .map_err(|_| damaged())?;
        let mut body = stored[HEADER_LEN..].to_vec();
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(associated_data(&self.id, kid)), &mut body)
            .map_err(|_| damaged())?;
        Ok(opened.to_vec())
    }
}

/// Whether a stored private half is sealed (else it is a plaintext PKCS#8 document).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(MAGIC)
}

/// The id of the key a stored value was sealed with, as printed in messages.
pub fn sealed_with_text(stored: &[u8]) -> String {
    sealed_with(stored).map_or_else(|| "(unknown)".to_owned(), |id| hex(&id))
}

fn sealed_with(stored: &[u8]) -> Option<[u8; KEY_ID_LEN]> {
    if !is_sealed(stored) || stored.len() < HEADER_LEN + 16 {
        return None;
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&stored[MAGIC.len()..MAGIC.len() + KEY_ID_LEN]);
    Some(id)
}

fn associated_data(key_id: &[u8; KEY_ID_LEN], kid: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + KEY_ID_LEN + kid.len());
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(key_id);
    aad.extend_from_slice(kid.as_bytes());
    aad
}

fn parse_key(bytes: &[u8]) -> Option<[u8; 32]> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Some(raw);
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        STANDARD.decode(text).ok()?
    };
    <[u8; 32]>::try_from(decoded.as_slice()).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_of(byte: u8) -> Result<KeySeal, KeySealError> {
        KeySeal::from_bytes(&[byte; 32])
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_key_and_its_kid() -> Result<(), KeySealError> {
        let seal = seal_of(7)?;
        let secret = b"0\x2e\x02\x01\x00 pkcs8 document".to_vec();
        let sealed = seal.seal("kid-a", &secret)?;
        assert!(is_sealed(&sealed) && !is_sealed(&secret));
        assert!(
            !sealed.windows(5).any(|w| w == b"pkcs8"),
            "plaintext visible"
        );
        assert_eq!(seal.open("kid-a", &sealed)?, secret);
        assert_ne!(
            seal.seal("kid-a", &secret)?,
            sealed,
            "a fresh nonce each time"
        );
        assert!(matches!(
            seal.open("kid-b", &sealed),
            Err(KeySealError::Damaged { .. })
        ));
        assert!(matches!(
            seal_of(8)?.open("kid-a", &sealed),
            Err(KeySealError::WrongKey { .. })
        ));
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert!(seal.open("kid-a", &flipped).is_err());
        Ok(())
    }

    #[test]
    fn key_files_hold_raw_hex_or_base64_keys_and_nothing_else() {
        let key = [0xabu8; 32];
        assert_eq!(parse_key(&key), Some(key));
        assert_eq!(parse_key(format!("{}\n", hex(&key)).as_bytes()), Some(key));
        assert_eq!(
            parse_key(format!("  {}\n", STANDARD.encode(key)).as_bytes()),
            Some(key)
        );
        assert_eq!(parse_key(b"too short"), None);
        assert_eq!(parse_key(STANDARD.encode([1u8; 16]).as_bytes()), None);
    }
}
