//! Hashes brought from other applications (`ImportUsers`): bcrypt (`$2a$`, `$2b$`, `$2y$`, as
//! the Express apps' `bcryptjs` writes them) and argon2 PHC strings of other parameters. Such a
//! hash is verified as it is, on the hashing threads like any other, and replaced by an
//! argon2id hash of the current parameters at the first successful login (`needs_rehash` is true
//! for anything else than the current argon2id).
//!
//! Costs are capped on import: a hash whose check takes seconds would hold a hashing slot that
//! long at every login (and every login attempt) of its account.

use argon2::{Params, password_hash::phc::PasswordHash};

/// bcrypt's cost is log2 of its rounds; 10 is bcryptjs' default, 12 a common hardening.
const MAX_BCRYPT_COST: u32 = 14;
/// 256 MiB and 10 passes: far above the OWASP baselines, far below a denial of service.
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ARGON2_PASSES: u32 = 10;

/// Whether `stored` is a bcrypt hash (by its prefix; validity is [`importable`]'s).
pub(super) fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// Whether `password` matches the bcrypt hash `stored` (constant-time comparison inside the
/// crate). Like bcryptjs, only the first 72 bytes of the password count. A malformed hash
/// matches nothing.
pub(super) fn matches_bcrypt(password: &[u8], stored: &str) -> bool {
    bcrypt::verify(password, stored).unwrap_or(false)
}

/// Whether a hash can be imported; else why not (the text never repeats the hash).
pub(super) fn importable(stored: &str) -> Result<(), &'static str> {
    if is_bcrypt(stored) {
        let parts: bcrypt::HashParts = stored
            .parse()
            .map_err(|_| "malformed bcrypt hash (expected 60 characters: $2b$NN$ salt and hash)")?;
        if !(4..=MAX_BCRYPT_COST).contains(&parts.get_cost()) {
            return Err("bcrypt cost outside 4 to 14");
        }
        return Ok(());
    }
    if stored.starts_with("$2") {
        return Err("unsupported bcrypt variant (accepted: $2a$, $2b$, $2y$)");
    }
    if !stored.starts_with("$argon2") {
        return Err("unsupported password hash (accepted: bcrypt, argon2 PHC strings)");
    }
    let parsed = PasswordHash::new(stored).map_err(|_| "malformed argon2 PHC string")?;
    if !matches!(
        parsed.algorithm.as_str(),
        "argon2id" | "argon2i" | "argon2d"
    ) {
        return Err("unsupported argon2 variant");
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("argon2 PHC string without salt or hash");
    }
    let params = Params::try_from(&parsed).map_err(|_| "invalid argon2 parameters")?;
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB || params.t_cost() > MAX_ARGON2_PASSES {
        return Err("argon2 cost above 256 MiB or 10 passes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcryptjs 3.0.3, `bcrypt.hashSync("alice in wonderland", 10)`: the first account of
    /// `auth-service/tests/fixtures/bcryptjs/users.jsonl`.
    const BCRYPTJS: &str = "$2b$10$uFzbmO0Trkg8.eeWeFEBzeEONgGR4xFk4ceNHty1YzjGjFJuKK/IC";

    #[test]
    fn bcrypt_hashes_verify_and_are_importable() {
        let made = bcrypt::hash("correct horse battery", 4).unwrap_or_default();
        assert!(is_bcrypt(&made));
        assert!(importable(&made).is_ok());
        assert!(matches_bcrypt(b"correct horse battery", &made));
        assert!(!matches_bcrypt(b"correct horse batter", &made));
        // $2y$ and $2a$ are the same algorithm under other names.
        let as_2y = made.replacen("$2b$", "$2y$", 1);
        assert!(matches_bcrypt(b"correct horse battery", &as_2y));
        assert!(importable(&as_2y).is_ok());
        assert!(importable(BCRYPTJS).is_ok());
        assert!(matches_bcrypt(b"alice in wonderland", BCRYPTJS));
        assert!(!matches_bcrypt(b"alice in wonderlan", BCRYPTJS));
    }

    #[test]
    fn what_cannot_be_verified_cheaply_is_refused() {
        assert!(
            importable("$2x$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy").is_err()
        );
        assert!(importable("$2b$10$short").is_err());
        assert!(
            importable("$2b$20$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy").is_err()
        );
        assert!(importable("5f4dcc3b5aa765d61d8327deb882cf99").is_err());
        assert!(importable("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGg").is_ok());
        assert!(importable("$argon2id$v=19$m=2000000,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGg").is_err());
        assert!(!matches_bcrypt(b"", "not a hash"));
    }
}
