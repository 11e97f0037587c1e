//! The signing-key rows and their key-encryption key (`key_seal.rs`): the checks made before the
//! ring is loaded, the sealing of rows written before the setting existed, and `keys rewrap`.
//!
//! Each of these reads every row first and writes nothing until every private half has opened
//! (or is plaintext), then replaces them all in one transaction, each only if it is still what
//! was read: a wrong key, a missing key or a racing writer leaves every row as it was, so no
//! key is ever left that nobody can open.

use super::key_seal::{KeySeal, KeySealError, is_sealed, sealed_with_text};
use crate::domain::{
    AuthError,
    ports::{PrivateKeyReplacement, SigningKeyRecord, Store},
};

/// Rounds of read-then-replace before giving up on a store that keeps changing under us.
const ATTEMPTS: usize = 3;

impl From<KeySealError> for AuthError {
    fn from(error: KeySealError) -> Self {
        AuthError::Internal(error.to_string())
    }
}

/// At start: reads `AUTH_KEY_ENCRYPTION_KEY_FILE` (if set) and [`prepare`]s the rows with it;
/// what the key manager seals and opens with.
pub async fn load(
    store: &dyn Store,
    key_file: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<KeySeal>>, KeySealError> {
    let seal = key_file.map(KeySeal::from_file).transpose()?;
    prepare(store, seal.as_ref()).await?;
    Ok(seal.map(std::sync::Arc::new))
}

/// At start, before the ring is loaded: fails (changing nothing) if a sealed private half does
/// not open with `seal`, or if rows are sealed and there is no `seal`; with `seal`, seals every
/// plaintext private half in one transaction. Without `seal` logs a warning (once per start).
/// Returns how many rows it sealed.
pub async fn prepare(store: &dyn Store, seal: Option<&KeySeal>) -> Result<usize, KeySealError> {
    let Some(seal) = seal else {
        for record in store.list_signing_keys().await? {
            if let Some(stored) = record.private_pkcs8.as_deref().filter(|p| is_sealed(p)) {
                return Err(KeySealError::Missing {
                    kid: record.kid,
                    sealed_with: sealed_with_text(stored),
                });
            }
        }
        tracing::warn!(
            "AUTH_KEY_ENCRYPTION_KEY_FILE is not set: signing keys are stored in plaintext in the database"
        );
        return Ok(0);
    };
    let sealed = reseal(store, |record, stored| {
        if is_sealed(stored) {
            seal.open(&record.kid, stored)?;
            Ok(None)
        } else {
            Ok(Some(seal.seal(&record.kid, stored)?))
        }
    })
    .await?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            key_id = %seal.id_text(),
            "plaintext signing keys sealed with AUTH_KEY_ENCRYPTION_KEY_FILE"
        );
    }
    Ok(sealed)
}

/// `keys rewrap`: seals every private half with `new`, opening each with `current` (or taking it
/// as plaintext); rows already sealed with `new` are left as they are, so it may be run again
/// (say, after a replica still on the old file rotated in between). Returns how many rows it
/// re-sealed.
pub async fn rewrap(
    store: &dyn Store,
    current: Option<&KeySeal>,
    new: &KeySeal,
) -> Result<usize, KeySealError> {
    reseal(store, |record, stored| {
        let plaintext = if !is_sealed(stored) {
            stored.to_vec()
        } else if new.open(&record.kid, stored).is_ok() {
            return Ok(None);
        } else {
            match current {
                Some(current) => current.open(&record.kid, stored)?,
                None => {
                    return Err(KeySealError::Missing {
                        kid: record.kid.clone(),
                        sealed_with: sealed_with_text(stored),
                    });
                }
            }
        };
        Ok(Some(new.seal(&record.kid, &plaintext)?))
    })
    .await
}

/// Reads every row with a private half, asks `replace` for its new value (`None`: keep it), and
/// writes all the new values in one transaction, each only if the row is unchanged.
async fn reseal(
    store: &dyn Store,
    replace: impl Fn(&SigningKeyRecord, &[u8]) -> Result<Option<Vec<u8>>, KeySealError>,
) -> Result<usize, KeySealError> {
    for _ in 0..ATTEMPTS {
        let mut replacements = Vec::new();
        for record in store.list_signing_keys().await? {
            let Some(stored) = record.private_pkcs8.as_deref() else {
                continue;
            };
            if let Some(replacement) = replace(&record, stored)? {
                replacements.push(PrivateKeyReplacement {
                    kid: record.kid.clone(),
                    expected: stored.to_vec(),
                    replacement,
                });
            }
        }
        if replacements.is_empty() || store.replace_private_keys(&replacements).await? {
            return Ok(replacements.len());
        }
    }
    Err(KeySealError::Raced)
}

/// The records with their private halves opened (plaintext rows are taken as they are).
pub fn open_records(
    records: Vec<SigningKeyRecord>,
    seal: Option<&KeySeal>,
) -> Result<Vec<SigningKeyRecord>, KeySealError> {
    records
        .into_iter()
        .map(|mut record| {
            if let Some(stored) = record.private_pkcs8.as_deref().filter(|p| is_sealed(p)) {
                let opened = match seal {
                    Some(seal) => seal.open(&record.kid, stored)?,
                    None => {
                        return Err(KeySealError::Missing {
                            kid: record.kid,
                            sealed_with: sealed_with_text(stored),
                        });
                    }
                };
                record.private_pkcs8 = Some(opened);
            }
            Ok(record)
        })
        .collect()
}

/// `record` with its private half sealed, ready to be written (as it is without `seal`).
pub fn sealed(
    mut record: SigningKeyRecord,
    seal: Option<&KeySeal>,
) -> Result<SigningKeyRecord, KeySealError> {
    if let (Some(seal), Some(private)) = (seal, record.private_pkcs8.as_deref()) {
        record.private_pkcs8 = Some(seal.seal(&record.kid, private)?);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        domain::{Timestamp, testing::MemoryStore},
        engine::keys::{KeyManager, generate_key},
    };

    #[tokio::test]
    async fn plaintext_rows_are_sealed_and_a_wrong_key_changes_nothing() -> Result<(), AuthError> {
        let store = Arc::new(MemoryStore::default());
        let now = Timestamp::from_millis(1_000);
        store.insert_signing_key(&generate_key(now, now)?).await?;
        let (first, second) = (
            KeySeal::from_bytes(&[1; 32])?,
            KeySeal::from_bytes(&[2; 32])?,
        );
        assert_eq!(prepare(store.as_ref(), Some(&first)).await?, 1);
        assert_eq!(prepare(store.as_ref(), Some(&first)).await?, 0);
        let before = store.list_signing_keys().await?[0].private_pkcs8.clone();
        assert!(matches!(
            prepare(store.as_ref(), Some(&second)).await,
            Err(KeySealError::WrongKey { .. })
        ));
        assert!(matches!(
            prepare(store.as_ref(), None).await,
            Err(KeySealError::Missing { .. })
        ));
        assert_eq!(store.list_signing_keys().await?[0].private_pkcs8, before);

        assert_eq!(rewrap(store.as_ref(), Some(&first), &second).await?, 1);
        assert_eq!(rewrap(store.as_ref(), Some(&first), &second).await?, 0);
        assert_eq!(prepare(store.as_ref(), Some(&second)).await?, 0);
        let keys = KeyManager::start_sealed(store.clone(), now, Some(Arc::new(second))).await?;
        assert!(keys.ring().await.signing_key(now).is_ok());
        Ok(())
    }
}
