//! Access-token parsing and verification (`auth_api::access_token::{key_id, verify}`), as the
//! auth service and every LocalVerifier run them. The first byte picks the shape:
//! 0 - the input is the token text;
//! 1 - the input is a header JSON, signed (with a valid claims set) by the verifying key;
//! 2 - the input is a claims JSON, signed (with a valid header) by the verifying key.
//! Shapes 1 and 2 get past the signature check, so the header and claims checks are fuzzed too.
#![no_main]

#[path = "common.rs"]
mod common;

use auth_api::access_token::{self, Audience};
use libfuzzer_sys::fuzz_target;

const HEADER: &[u8] = br#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#;
const CLAIMS: &[u8] = br#"{"iss":"auth","sub":"u","aud":"api","sid":"s","iat":1800000000,"exp":1800000900,"jti":"j","roles":[]}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let pair = common::key_pair();
    let token = match shape % 3 {
        0 => match std::str::from_utf8(rest) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        },
        1 => common::signed(&pair, rest, CLAIMS),
        _ => common::signed(&pair, HEADER, rest),
    };
    let key = common::decoding_key(&pair);
    let header_ok = access_token::key_id(&token).is_ok();
    for audience in [Audience::Exactly("api"), Audience::Any] {
        if let Ok(claims) =
            access_token::verify(&token, &key, &common::rules(), audience, common::NOW)
        {
            assert!(!claims.sub.is_empty() && !claims.sid.is_empty());
            assert_eq!(claims.iss, "auth");
            if header_ok && matches!(audience, Audience::Exactly(_)) {
                assert_eq!(claims.aud, "api");
            }
        }
    }
});
