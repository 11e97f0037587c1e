//! Property tests of every parser an attacker reaches: access tokens (header and claims, with and
//! without a valid signature), JWKS entries, opaque refresh/session tokens, emails, and the
//! protobuf decoding of every `auth.v1` request. Each property holds for 256 generated inputs
//! per run; the cargo-fuzz targets in `fuzz/` explore the same entry points for longer.

use std::time::Duration;

use auth_api::{
    access_token::{self, Audience, TokenRules},
    v1 as pb,
};
use auth_service::domain::{accounts::Email, opaque_token::OpaqueToken};
use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;
use proptest::prelude::*;
use prost::Message;
use serde_json::Value;

const NOW: i64 = 1_800_000_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // A failing case's seed is written beside this file (`properties.regressions`) and
        // replayed first by every later run: commit it with the fix, so the case stays tested.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

fn rules() -> TokenRules {
    TokenRules {
        issuer: "auth".into(),
        leeway: Duration::from_secs(5),
    }
}

/// One Ed25519 key pair per test run: (PKCS#8, decoding key, JWK `x`).
fn key_pair() -> (Vec<u8>, DecodingKey, String) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .expect("key")
        .public_key()
        .as_ref()
        .to_vec();
    (
        pkcs8.as_ref().to_vec(),
        DecodingKey::from_ed_der(&public),
        URL_SAFE_NO_PAD.encode(&public),
    )
}

/// Strings that matter to the parsers, mixed with arbitrary ones.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "EdDSA", "none", "HS256", "RS256", "at+jwt", "JWT", "OKP", "Ed25519", "X25519", "oct",
            "sig", "enc", "auth", "api", "",
        ])
        .prop_map(str::to_owned),
        ".{0,24}",
        "[A-Za-z0-9_-]{0,64}",
    ]
}

/// Arbitrary JSON, biased towards the field names of JWT headers, claims and JWKs.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (NOW - 1000..NOW + 1000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        interesting_string().prop_map(Value::from),
    ];
    let key = prop_oneof![
        prop::sample::select(vec![
            "alg", "typ", "kid", "jku", "jwk", "x5u", "x5c", "crit", "kty", "crv", "x", "use",
            "iss", "sub", "aud", "sid", "iat", "exp", "nbf", "jti", "roles",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,4}",
    ];
    leaf.prop_recursive(4, 64, 10, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..10)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Header and claims that pass every check, for properties that vary one of them.
fn valid_header() -> Value {
    serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"})
}

fn valid_claims() -> Value {
    serde_json::json!({
        "iss": "auth", "sub": "user", "aud": "api", "sid": "session",
        "iat": NOW, "exp": NOW + 900, "jti": "j", "roles": [],
    })
}

fn sign(header: &Value, claims: &Value, pkcs8: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = Ed25519KeyPair::from_pkcs8(pkcs8)
        .expect("key")
        .sign(input.as_bytes());
    format!("{input}.{}", b64(signature.as_ref()))
}

/// Both steps of access-token verification, as the service runs them.
fn check(
    token: &str,
    key: &DecodingKey,
) -> Result<access_token::AccessClaims, access_token::TokenError> {
    access_token::key_id(token)?;
    access_token::verify(token, key, &rules(), Audience::Exactly("api"), NOW)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn key_id_and_verify_never_panic_on_arbitrary_strings(token in ".{0,600}") {
        let (_, key, _) = key_pair();
        let _ = access_token::key_id(&token);
        let _ = access_token::verify(&token, &key, &rules(), Audience::Any, NOW);
    }

    #[test]
    fn key_id_and_verify_never_panic_on_three_base64url_segments(
        header in prop::collection::vec(any::<u8>(), 0..200),
        claims in prop::collection::vec(any::<u8>(), 0..300),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let (_, key, _) = key_pair();
        let token = format!("{}.{}.{}", b64(header), b64(claims), b64(signature));
        let _ = access_token::key_id(&token);
        prop_assert!(check(&token, &key).is_err(), "an unsigned token verified");
    }

    #[test]
    fn only_the_exact_header_is_accepted_over_a_valid_signature(header in json()) {
        let (pkcs8, key, _) = key_pair();
        let token = sign(&header, &valid_claims(), &pkcs8);
        if check(&token, &key).is_ok() {
            prop_assert_eq!(&header["alg"], "EdDSA");
            let typ = header["typ"].as_str().unwrap_or_default();
            prop_assert!(
                typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
            );
            for refused in ["jku", "jwk", "x5u", "x5c", "crit"] {
                prop_assert!(header.get(refused).is_none_or(Value::is_null), "{} accepted", refused);
            }
        }
    }

    #[test]
    fn validly_signed_arbitrary_claims_never_panic_and_never_verify_unless_complete(
        claims in json(),
    ) {
        let (pkcs8, key, _) = key_pair();
        let token = sign(&valid_header(), &claims, &pkcs8);
        if let Ok(verified) = check(&token, &key) {
            prop_assert_eq!(verified.iss, "auth");
            prop_assert_eq!(verified.aud, "api");
            prop_assert!(!verified.sub.is_empty() && !verified.sid.is_empty());
            prop_assert!(verified.exp + 5 > NOW && verified.iat - 5 <= NOW);
        }
    }

    #[test]
    fn a_validly_signed_token_from_another_issuer_never_verifies(issuer in "\\PC{0,40}") {
        prop_assume!(issuer != "auth");
        let (pkcs8, key, _) = key_pair();
        // The same claims from our own issuer verify: only `iss` makes the difference.
        prop_assert!(check(&sign(&valid_header(), &valid_claims(), &pkcs8), &key).is_ok());
        let mut claims = valid_claims();
        claims["iss"] = Value::String(issuer.clone());
        let token = sign(&valid_header(), &claims, &pkcs8);
        prop_assert!(check(&token, &key).is_err(), "iss {:?} accepted", issuer);
    }

    #[test]
    fn one_changed_claim_value_keeps_verification_total(field in prop::sample::select(vec![
        "iss", "sub", "aud", "sid", "iat", "exp", "nbf", "jti", "roles",
    ]), value in json()) {
        let (pkcs8, key, _) = key_pair();
        let mut claims = valid_claims();
        claims[field] = value.clone();
        let token = sign(&valid_header(), &claims, &pkcs8);
        let result = check(&token, &key);
        if matches!(field, "iss" | "aud") && value != claims_default(field) {
            prop_assert!(result.is_err(), "{} = {} accepted", field, value);
        }
    }

    #[test]
    fn decoding_key_from_jwk_never_panics_and_takes_only_ed25519_signing_keys(jwk in json()) {
        if decoding_key_from_jwk_accepts(&jwk) {
            prop_assert_eq!(&jwk["kty"], "OKP");
            prop_assert_eq!(&jwk["crv"], "Ed25519");
            prop_assert!(jwk.get("use").is_none_or(|usage| usage == "sig"));
            prop_assert!(jwk.get("alg").is_none_or(|alg| alg == "EdDSA"));
        }
    }

    #[test]
    fn a_jwk_shaped_entry_with_arbitrary_x_never_panics(x in ".{0,100}", kid in ".{0,20}") {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid});
        let _ = access_token::decoding_key_from_jwk(&jwk);
    }

    #[test]
    fn hash_of_accepts_exactly_the_canonical_43_character_base64url_strings(
        presented in prop_oneof![".{0,60}", "[A-Za-z0-9_-]{42,44}"],
    ) {
        let canonical = presented.len() == 43
            && URL_SAFE_NO_PAD.decode(&presented).is_ok_and(|bytes| b64(&bytes) == presented);
        prop_assert_eq!(OpaqueToken::hash_of(&presented).is_ok(), canonical);
    }

    #[test]
    fn every_32_byte_token_hashes_to_its_sha256(bytes in prop::array::uniform32(any::<u8>())) {
        let text = b64(bytes);
        prop_assert!(OpaqueToken::looks_like(&text));
        let hash = OpaqueToken::hash_of(&text).expect("a canonical token");
        prop_assert_eq!(hash.0, digest::digest(&digest::SHA256, &bytes).as_ref().to_vec());
    }

    #[test]
    fn email_parsing_never_panics_and_accepts_only_plausible_addresses(input in prop_oneof![
        ".{0,300}",
        "[a-zA-Z0-9.+_-]{1,20}@[a-zA-Z0-9-]{1,20}\\.[a-z]{2,5}",
    ]) {
        let _ = Email::lookup_key(&input);
        if let Ok(email) = Email::parse(&input) {
            prop_assert!(email.address.len() <= 254);
            prop_assert!(email.address.contains('@'));
            prop_assert!(!email.address.chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert_eq!(email.key, Email::lookup_key(&input));
        }
    }

    #[test]
    fn every_request_type_decodes_arbitrary_bytes_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        decodes_or_refuses::<pb::RegisterRequest>(&bytes)?;
        decodes_or_refuses::<pb::LoginRequest>(&bytes)?;
        decodes_or_refuses::<pb::VerifyRequest>(&bytes)?;
        decodes_or_refuses::<pb::RefreshRequest>(&bytes)?;
        decodes_or_refuses::<pb::LogoutRequest>(&bytes)?;
        decodes_or_refuses::<pb::ListSessionsRequest>(&bytes)?;
        decodes_or_refuses::<pb::RevokeSessionRequest>(&bytes)?;
        decodes_or_refuses::<pb::RevokeAllSessionsRequest>(&bytes)?;
        decodes_or_refuses::<pb::ChangePasswordRequest>(&bytes)?;
        decodes_or_refuses::<pb::GetJwksRequest>(&bytes)?;
        decodes_or_refuses::<pb::ExchangeTokenRequest>(&bytes)?;
        decodes_or_refuses::<pb::WatchRevocationsRequest>(&bytes)?;
        if let Ok(login) = pb::LoginRequest::decode(bytes.as_slice()) {
            // The handler's conversion of `kind` is total too.
            let _ = pb::CredentialKind::try_from(login.kind);
        }
    }
}

fn claims_default(field: &str) -> Value {
    valid_claims()[field].clone()
}

fn decoding_key_from_jwk_accepts(jwk: &Value) -> bool {
    access_token::decoding_key_from_jwk(jwk).is_some()
}

/// Decodes `bytes` as `M`; what decodes re-encodes to a message that decodes to the same value.
fn decodes_or_refuses<M: Message + Default + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    if let Ok(message) = M::decode(bytes) {
        let again = M::decode(message.encode_to_vec().as_slice())
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(again, message);
    }
    Ok(())
}
