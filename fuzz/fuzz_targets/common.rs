//! A fixed Ed25519 key and the rules the service verifies with, shared by the token targets.

use std::time::Duration;

use auth_api::access_token::TokenRules;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;

pub const NOW: i64 = 1_800_000_000;

pub fn key_pair() -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("a 32-byte seed")
}

pub fn decoding_key(pair: &Ed25519KeyPair) -> DecodingKey {
    DecodingKey::from_ed_der(pair.public_key().as_ref())
}

pub fn rules() -> TokenRules {
    TokenRules {
        issuer: "auth".into(),
        leeway: Duration::from_secs(5),
    }
}

/// `header.claims.signature`, signed with `pair` over exactly these bytes.
pub fn signed(pair: &Ed25519KeyPair, header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = pair.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}
