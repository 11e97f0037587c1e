//! argon2id into and out of PHC strings (`$argon2id$v=19$m=...`), hashing into memory the caller
//! owns (a hashing thread's reused buffer). Verification reads the parameters written in the
//! stored string, so hashes made with older parameters still verify.

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use subtle::ConstantTimeEq as _;

use crate::domain::AuthError;

/// RFC 9106 recommends 128-bit salts.
pub(super) const SALT_BYTES: usize = 16;
/// argon2's default tag length (256 bits).
const OUTPUT_BYTES: usize = 32;

/// `memory` as exactly the blocks `params` needs (grown once, then reused).
fn blocks_for<'m>(params: &Params, memory: &'m mut Vec<Block>) -> &'m mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

pub(super) fn hash_into_phc(
    params: &Params,
    password: &[u8],
    salt: &[u8],
    memory: &mut Vec<Block>,
) -> Result<String, AuthError> {
    let failed = |error: &dyn std::fmt::Display| {
        AuthError::Internal(format!("argon2 hashing failed: {error}"))
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut output = [0u8; OUTPUT_BYTES];
    argon2
        .hash_password_into_with_memory(password, salt, &mut output, blocks_for(params, memory))
        .map_err(|error| failed(&error))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|error| failed(&error))?,
        salt: Some(Salt::new(salt).map_err(|error| failed(&error))?),
        hash: Some(Output::new(&output).map_err(|error| failed(&error))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to the PHC string `stored` (with the parameters written in it),
/// compared in constant time. An unparsable string matches nothing.
pub(super) fn matches_phc(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt, &mut output, blocks_for(&params, memory))
        .is_ok()
        && bool::from(output.as_slice().ct_eq(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_phc_api_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let params = Params::new(1024, 1, 1, None).unwrap_or_default();
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut memory = Vec::new();
        // Stored by earlier versions of this service (the crate's API): still verifies.
        let stored = reference
            .hash_password(b"correct horse")
            .map(|hash| hash.to_string())
            .unwrap_or_default();
        assert!(matches_phc(b"correct horse", &stored, &mut memory));
        assert!(!matches_phc(b"correct hors", &stored, &mut memory));
        // Made here: the crate verifies it, so nothing is locked to this code.
        let ours = hash_into_phc(&params, b"correct horse", &[7; SALT_BYTES], &mut memory)
            .unwrap_or_default();
        assert!(ours.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{ours}");
        assert!(
            reference
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        assert!(!matches_phc(b"", "not a phc string", &mut memory));
    }
}
