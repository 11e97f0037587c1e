//! JWKS and key parsing, as `LocalVerifier` reads `GetJwks`: JSON -> `keys[]` ->
//! `decoding_key_from_jwk`; every key taken is then used to verify a genuine token, so a
//! malformed key (a short `x`, say) meets the signature check too.
#![no_main]

#[path = "common.rs"]
mod common;

use auth_api::access_token::{self, Audience};
use libfuzzer_sys::fuzz_target;

const HEADER: &[u8] = br#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#;
const CLAIMS: &[u8] = br#"{"iss":"auth","sub":"u","aud":"api","sid":"s","iat":1800000000,"exp":1800000900,"jti":"j","roles":[]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(jwks) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let token = common::signed(&common::key_pair(), HEADER, CLAIMS);
    let entries = jwks["keys"].as_array().into_iter().flatten().chain([&jwks]);
    for (kid, key) in entries.filter_map(access_token::decoding_key_from_jwk) {
        let _ = kid.len();
        let _ = access_token::verify(&token, &key, &common::rules(), Audience::Any, common::NOW);
    }
});
