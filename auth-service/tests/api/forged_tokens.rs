//! Tokens an attacker might craft (RFC 8725): each is refused with UNAUTHENTICATED (or
//! INVALID_ARGUMENT for absurd input), the server keeps serving, and the genuine token still works.

use auth_service::domain::keys::generate_key;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{Backend, TestApp, TestResult, on_both_backends, unique_email, unix_now};

on_both_backends!(forged_and_malformed_access_tokens_are_refused);

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn sign(header_json: Value, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = header_json["typ"].as_str().map(str::to_owned);
    header.kid = header_json["kid"].as_str().map(str::to_owned);
    if let Some(alg) = header_json["alg"].as_str() {
        header.alg = alg.parse().expect("known algorithm");
    }
    jsonwebtoken::encode(&header, claims, key).expect("signing")
}

async fn forged_and_malformed_access_tokens_are_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (login, genuine) = app.user_with_tokens(&unique_email("victim")).await?;
    let (other_login, _) = app.user_with_tokens(&unique_email("other")).await?;

    // The service's own signing key, read from its database: forgeries signed with it isolate
    // each claim check from the signature check.
    let store = app.database.store().await?;
    let record = store
        .list_signing_keys()
        .await?
        .pop()
        .expect("a signing key");
    let real_key = EncodingKey::from_ed_der(&record.private_pkcs8);
    let kid = record.kid.clone();
    let jwks: Value = serde_json::from_str(
        &app.keys
            .clone()
            .get_jwks(auth_api::v1::GetJwksRequest {})
            .await?
            .into_inner()
            .jwks_json,
    )?;
    let public_key = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().expect("x"))?;

    let now = unix_now();
    let claims = json!({
        "iss": "auth", "sub": login.user_id, "aud": "api", "sid": login.session_id,
        "iat": now, "exp": now + 600, "jti": "forged", "roles": ["admin"],
    });
    let with = |field: &str, value: Value| {
        let mut changed = claims.clone();
        changed[field] = value;
        changed
    };
    let without = |field: &str| {
        let mut changed = claims.clone();
        changed.as_object_mut().expect("object").remove(field);
        changed
    };
    let good_header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    let [header, _, signature]: [&str; 3] = genuine
        .access_token
        .split('.')
        .collect::<Vec<_>>()
        .try_into()
        .expect("three parts");
    let stranger_key = generate_key(
        auth_service::domain::Timestamp::now(),
        auth_service::domain::Timestamp::now(),
    )?;

    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
                b64(&claims)
            ),
        ),
        (
            "HS256 keyed with the public key",
            sign(
                json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}),
                &claims,
                &EncodingKey::from_secret(&public_key),
            ),
        ),
        (
            "tampered payload",
            format!(
                "{header}.{}.{signature}",
                b64(&with("sub", json!(other_login.user_id)))
            ),
        ),
        (
            "wrong issuer",
            sign(
                good_header.clone(),
                &with("iss", json!("https://evil.example")),
                &real_key,
            ),
        ),
        (
            "wrong audience",
            sign(
                good_header.clone(),
                &with("aud", json!("payments")),
                &real_key,
            ),
        ),
        (
            "audience as an unexpected type",
            sign(good_header.clone(), &with("aud", json!(42)), &real_key),
        ),
        (
            "expired",
            sign(
                good_header.clone(),
                &with("exp", json!(now - 60)),
                &real_key,
            ),
        ),
        (
            "not yet valid",
            sign(
                good_header.clone(),
                &with("nbf", json!(now + 600)),
                &real_key,
            ),
        ),
        (
            "issued in the future",
            sign(
                good_header.clone(),
                &with("iat", json!(now + 600)),
                &real_key,
            ),
        ),
        (
            "no exp",
            sign(good_header.clone(), &without("exp"), &real_key),
        ),
        (
            "no iat",
            sign(good_header.clone(), &without("iat"), &real_key),
        ),
        (
            "no sub",
            sign(good_header.clone(), &without("sub"), &real_key),
        ),
        (
            "session of another user",
            sign(
                good_header.clone(),
                &with("sid", json!(other_login.session_id)),
                &real_key,
            ),
        ),
        (
            "unknown session",
            sign(
                good_header.clone(),
                &with("sid", json!("no-such-session")),
                &real_key,
            ),
        ),
        (
            "typ JWT",
            sign(
                json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
                &claims,
                &real_key,
            ),
        ),
        (
            "no kid",
            sign(json!({"alg": "EdDSA", "typ": "at+jwt"}), &claims, &real_key),
        ),
        (
            "unknown kid, stranger's key",
            sign(
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "stranger"}),
                &claims,
                &EncodingKey::from_ed_der(&stranger_key.private_pkcs8),
            ),
        ),
        (
            "our kid, stranger's key",
            sign(
                good_header.clone(),
                &claims,
                &EncodingKey::from_ed_der(&stranger_key.private_pkcs8),
            ),
        ),
        (
            "key embedded in the header",
            format!(
                "{}.{}.{signature}",
                b64(
                    &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}})
                ),
                b64(&claims)
            ),
        ),
        (
            "truncated",
            genuine.access_token[..genuine.access_token.len() - 10].to_owned(),
        ),
        ("two segments", format!("{header}.{signature}")),
        ("not base64", "!!!.@@@.###".to_owned()),
        (
            "header is not JSON",
            format!(
                "{}.{}.{signature}",
                URL_SAFE_NO_PAD.encode("not json"),
                b64(&claims)
            ),
        ),
        (
            "one megabyte",
            format!("{header}.{}.{signature}", "A".repeat(1024 * 1024)),
        ),
    ];

    for (attack, token) in &cases {
        let status = app.verify(token).await.expect_err(attack);
        assert!(
            matches!(status.code(), Code::Unauthenticated | Code::InvalidArgument),
            "{attack}: {status:?}"
        );
    }
    // Nothing was disturbed: the genuine token still verifies, without the forged admin role.
    let verified = app.verify(&genuine.access_token).await?;
    assert!(verified.principal.expect("principal").roles.is_empty());
    Ok(())
}
