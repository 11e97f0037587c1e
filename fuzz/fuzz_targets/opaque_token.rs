//! Refresh and session token decoding: `OpaqueToken::looks_like` (how Verify and Logout tell an
//! opaque token from a JWT) and `OpaqueToken::hash_of` (the only way a presented token reaches
//! the store). Only canonical 43-character base64url strings may hash.
#![no_main]

use auth_service::domain::opaque_token::OpaqueToken;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let looks_like = OpaqueToken::looks_like(text);
    if let Ok(hash) = OpaqueToken::hash_of(text) {
        assert!(looks_like);
        assert_eq!(hash.0.len(), 32);
        let bytes = URL_SAFE_NO_PAD.decode(text).expect("hash_of accepted it");
        assert_eq!(URL_SAFE_NO_PAD.encode(bytes), text);
    }
});
