//! Token forgery and validation (RFC 8725, ASVS 5.0 chapter 9): every forgery is refused with
//! UNAUTHENTICATED / TOKEN_INVALID (TOKEN_EXPIRED for an expired one), and afterwards the
//! victim's genuine token still verifies without the forged `admin` role, their session list is
//! unchanged, and the service holds the same signing keys.
//!
//! Most forgeries are signed with the service's real private key, read from its database, so
//! each test isolates one header or claim check from the signature check.

use auth_api::{
    VerifyError,
    v1::{self as pb, CredentialKind},
};
use auth_service::{domain::Timestamp, engine::keys::generate_key};
use aws_lc_rs::{
    hmac,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};
use tonic::Code;

use super::other_session_ids;
use crate::helpers::{
    Backend, TestApp, TestResult, assert_error, local_verifier, on_both_backends, session_token,
    unique_email, unix_now,
};

on_both_backends!(
    an_access_token_cannot_outlive_its_ttl_by_exchanging_itself,
    alg_none_is_refused,
    alg_none_in_other_spellings_is_refused,
    hs256_signed_with_the_public_key_is_refused,
    es256_header_on_an_eddsa_signature_is_refused,
    a_tampered_payload_is_refused,
    a_stripped_signature_is_refused,
    a_wrong_issuer_is_refused,
    a_wrong_audience_is_refused,
    audience_as_a_number_is_refused,
    audience_as_an_array_is_refused,
    exp_as_a_string_is_refused,
    sub_as_a_number_is_refused,
    an_expired_token_is_refused_as_expired,
    exp_just_beyond_the_leeway_is_refused,
    exp_within_the_leeway_is_still_accepted,
    nbf_in_the_future_is_refused,
    iat_in_the_future_is_refused,
    a_token_without_exp_is_refused,
    a_token_without_iat_is_refused,
    a_token_without_sub_is_refused,
    an_empty_session_id_is_refused,
    a_session_of_another_user_is_refused,
    an_unknown_session_is_refused,
    typ_jwt_is_refused,
    a_missing_typ_is_refused,
    a_missing_kid_is_refused,
    unknown_kid_with_a_strangers_key_is_refused,
    our_kid_with_a_strangers_key_is_refused,
    a_key_embedded_in_the_jwk_header_is_refused,
    a_jku_header_is_refused,
    an_x5u_header_is_refused,
    an_x5c_header_is_refused,
    a_crit_header_is_refused,
    kid_with_path_traversal_is_refused,
    kid_with_sql_injection_is_refused,
    a_truncated_token_is_refused,
    two_segments_are_refused,
    five_segments_shaped_like_a_jwe_are_refused,
    segments_that_are_not_base64url_are_refused,
    padded_or_standard_base64_segments_are_refused,
    a_header_that_is_not_json_is_refused,
    a_token_over_the_size_cap_is_refused_before_parsing,
    a_megabyte_token_is_refused,
    a_refresh_token_presented_as_an_access_token_is_refused,
    an_exchanged_token_for_another_audience_is_refused_where_ours_is_expected,
    a_session_token_presented_to_a_local_verifier_is_refused,
);

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A compact JWS over exactly these header and claims, signed with an Ed25519 PKCS#8 key.
fn sign_ed25519(header: &Value, claims: &Value, pkcs8: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let key = Ed25519KeyPair::from_pkcs8(pkcs8).expect("Ed25519 key");
    let signature = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).as_ref());
    format!("{input}.{signature}")
}

/// A victim with a genuine token pair (and a management session to look at their sessions
/// with), a second user, and the service's real signing key.
struct Forgery {
    app: TestApp,
    victim: pb::LoginResponse,
    genuine: pb::TokenPair,
    manager: String,
    other: pb::LoginResponse,
    kid: String,
    real_pkcs8: Vec<u8>,
    keys_before: usize,
    /// Where `refused` asks to exchange a forgery.
    exchange_audience: String,
}

impl Forgery {
    async fn new(backend: &Backend) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Self::new_with(backend, |_| {}).await
    }

    async fn new_with(
        backend: &Backend,
        configure: impl FnOnce(&mut auth_service::config::Settings),
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        // `refused` also presents each forgery as an ExchangeToken subject.
        let app = TestApp::spawn_with(backend, |settings| {
            settings.exchange_audiences = vec!["payments".into()];
            configure(settings);
        })
        .await?;
        let exchange_audience = app
            .settings
            .exchange_audiences
            .first()
            .cloned()
            .expect("an exchange audience");
        let email = unique_email("victim");
        let (victim, genuine) = app.user_with_tokens(&email).await?;
        let manager = app.manager_token(&email).await?;
        let (other, _) = app.user_with_tokens(&unique_email("other")).await?;
        let keys = app.database.store().await?.list_signing_keys().await?;
        let record = keys.last().expect("a signing key");
        Ok(Self {
            kid: record.kid.clone(),
            real_pkcs8: record
                .private_pkcs8
                .clone()
                .expect("the signing key's private half"),
            keys_before: keys.len(),
            exchange_audience,
            app,
            victim,
            genuine,
            manager,
            other,
        })
    }

    /// The victim's claims, plus a forged `admin` role.
    fn claims(&self) -> Value {
        let now = unix_now();
        json!({
            "iss": "auth", "sub": self.victim.user_id, "aud": "api",
            "sid": self.victim.session_id, "iat": now, "exp": now + 600,
            "jti": "forged", "roles": ["admin"],
        })
    }

    fn with(&self, field: &str, value: Value) -> Value {
        let mut claims = self.claims();
        claims[field] = value;
        claims
    }

    fn without(&self, field: &str) -> Value {
        let mut claims = self.claims();
        claims.as_object_mut().expect("object").remove(field);
        claims
    }

    fn header(&self) -> Value {
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid})
    }

    fn header_with(&self, field: &str, value: Value) -> Value {
        let mut header = self.header();
        header[field] = value;
        header
    }

    /// Signed with the service's own key.
    fn signed(&self, header: &Value, claims: &Value) -> String {
        sign_ed25519(header, claims, &self.real_pkcs8)
    }

    fn genuine_parts(&self) -> (String, String, String) {
        let parts: Vec<&str> = self.genuine.access_token.split('.').collect();
        assert_eq!(parts.len(), 3);
        (parts[0].into(), parts[1].into(), parts[2].into())
    }

    /// `token` is refused by Verify with `code`/`reason`, and for the same reason as the
    /// subject of an ExchangeToken (the other RPC that takes an app's access token), and the
    /// victim is unharmed.
    async fn refused(&self, token: &str, code: Code, reason: &str) -> TestResult {
        assert_error(self.app.verify(token).await, code, reason);
        if code == Code::Unauthenticated {
            let exchanged = self
                .app
                .auth
                .clone()
                .exchange_token(pb::ExchangeTokenRequest {
                    subject_token: token.into(),
                    audience: self.exchange_audience.clone(),
                })
                .await;
            assert_error(exchanged, code, reason);
        }
        self.unharmed().await
    }

    async fn unharmed(&self) -> TestResult {
        let verified = self.app.verify(&self.genuine.access_token).await?;
        let principal = verified.principal.expect("principal");
        assert_eq!(principal.user_id, self.victim.user_id);
        assert!(principal.roles.is_empty(), "a forged role leaked");
        assert_eq!(
            other_session_ids(&self.app, &self.manager).await?,
            [self.victim.session_id.as_str()]
        );
        let keys = self.app.database.store().await?.list_signing_keys().await?;
        assert_eq!(keys.len(), self.keys_before, "the key set changed");
        Ok(())
    }
}

const INVALID: (Code, &str) = (Code::Unauthenticated, "TOKEN_INVALID");

async fn alg_none_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = format!(
        "{}.{}.",
        b64(&f.header_with("alg", json!("none"))),
        b64(&f.claims())
    );
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn alg_none_in_other_spellings_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let (_, _, signature) = f.genuine_parts();
    for alg in ["None", "NONE", "nOnE"] {
        for tail in ["", signature.as_str()] {
            let header = f.header_with("alg", json!(alg));
            let token = format!("{}.{}.{tail}", b64(&header), b64(&f.claims()));
            assert_error(f.app.verify(&token).await, INVALID.0, INVALID.1);
        }
    }
    f.unharmed().await
}

async fn hs256_signed_with_the_public_key_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let public_key = Ed25519KeyPair::from_pkcs8(&f.real_pkcs8)?
        .public_key()
        .as_ref()
        .to_vec();
    let header = f.header_with("alg", json!("HS256"));
    let input = format!("{}.{}", b64(&header), b64(&f.claims()));
    // Both forms a confused verifier might use as the HMAC secret: raw bytes and the JWK `x`.
    for secret in [
        public_key.clone(),
        URL_SAFE_NO_PAD.encode(&public_key).into_bytes(),
    ] {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_error(f.app.verify(&token).await, INVALID.0, INVALID.1);
    }
    f.unharmed().await
}

async fn es256_header_on_an_eddsa_signature_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let claims = f.claims();
    let genuine_signature = f.signed(&f.header(), &claims);
    let signature = genuine_signature.rsplit('.').next().expect("signature");
    let header = f.header_with("alg", json!("ES256"));
    let token = format!("{}.{}.{signature}", b64(&header), b64(&claims));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_tampered_payload_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let (header, _, signature) = f.genuine_parts();
    let payload = b64(&f.with("sub", json!(f.other.user_id)));
    f.refused(
        &format!("{header}.{payload}.{signature}"),
        INVALID.0,
        INVALID.1,
    )
    .await
}

async fn a_stripped_signature_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let (header, payload, _) = f.genuine_parts();
    f.refused(&format!("{header}.{payload}."), INVALID.0, INVALID.1)
        .await
}

async fn a_wrong_issuer_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("iss", json!("https://evil.example")));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_wrong_audience_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("aud", json!("payments")));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn audience_as_a_number_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("aud", json!(42)));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn audience_as_an_array_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("aud", json!(["api", "payments"])));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn exp_as_a_string_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let exp = (unix_now() + 600).to_string();
    let token = f.signed(&f.header(), &f.with("exp", json!(exp)));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn sub_as_a_number_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("sub", json!(1)));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn an_expired_token_is_refused_as_expired(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("exp", json!(unix_now() - 60)));
    f.refused(&token, Code::Unauthenticated, "TOKEN_EXPIRED")
        .await
}

async fn exp_just_beyond_the_leeway_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    // Default leeway 5 s: expired 7 s ago is past it.
    let token = f.signed(&f.header(), &f.with("exp", json!(unix_now() - 7)));
    f.refused(&token, Code::Unauthenticated, "TOKEN_EXPIRED")
        .await
}

async fn exp_within_the_leeway_is_still_accepted(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    // The edge from the other side: 2 s past `exp` is inside the 5 s leeway (clock skew).
    let claims = json!({
        "iss": "auth", "sub": f.victim.user_id, "aud": "api", "sid": f.victim.session_id,
        "iat": unix_now() - 60, "exp": unix_now() - 2, "jti": "edge", "roles": [],
    });
    f.app.verify(&f.signed(&f.header(), &claims)).await?;
    f.unharmed().await
}

async fn nbf_in_the_future_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("nbf", json!(unix_now() + 30)));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn iat_in_the_future_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("iat", json!(unix_now() + 600)));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_token_without_exp_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.without("exp"));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_token_without_iat_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.without("iat"));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_token_without_sub_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.without("sub"));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn an_empty_session_id_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("sid", json!("")));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_session_of_another_user_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("sid", json!(f.other.session_id)));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn an_unknown_session_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&f.header(), &f.with("sid", json!("no-such-session")));
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn typ_jwt_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    for typ in ["JWT", "jwt", "application/jwt", "secevent+jwt"] {
        let token = f.signed(&f.header_with("typ", json!(typ)), &f.claims());
        assert_error(f.app.verify(&token).await, INVALID.0, INVALID.1);
    }
    f.unharmed().await
}

async fn a_missing_typ_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&json!({"alg": "EdDSA", "kid": f.kid}), &f.claims());
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_missing_kid_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = f.signed(&json!({"alg": "EdDSA", "typ": "at+jwt"}), &f.claims());
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn unknown_kid_with_a_strangers_key_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let stranger = generate_key(Timestamp::now(), Timestamp::now())?;
    let header = f.header_with("kid", json!(stranger.kid));
    let token = sign_ed25519(
        &header,
        &f.claims(),
        stranger.private_pkcs8.as_deref().expect("a fresh key"),
    );
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn our_kid_with_a_strangers_key_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let stranger = generate_key(Timestamp::now(), Timestamp::now())?;
    let token = sign_ed25519(
        &f.header(),
        &f.claims(),
        stranger.private_pkcs8.as_deref().expect("a fresh key"),
    );
    f.refused(&token, INVALID.0, INVALID.1).await
}

/// The stranger's public key as a JWK, and a token signed with its private key.
fn strangers_jwk_and_token(
    f: &Forgery,
    field: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let stranger = generate_key(Timestamp::now(), Timestamp::now())?;
    let public =
        Ed25519KeyPair::from_pkcs8(stranger.private_pkcs8.as_deref().expect("a fresh key"))?
            .public_key()
            .as_ref()
            .to_vec();
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(public), "kid": f.kid});
    let value = match field {
        "jwk" => jwk,
        _ => json!("https://evil.example/jwks.json"),
    };
    Ok(sign_ed25519(
        &f.header_with(field, value),
        &f.claims(),
        stranger.private_pkcs8.as_deref().expect("a fresh key"),
    ))
}

async fn a_key_embedded_in_the_jwk_header_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let token = strangers_jwk_and_token(&f, "jwk")?;
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_jku_header_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    // Signed with the real key: the header alone must be enough to refuse it.
    let header = f.header_with("jku", json!("https://evil.example/jwks.json"));
    f.refused(&f.signed(&header, &f.claims()), INVALID.0, INVALID.1)
        .await?;
    let token = strangers_jwk_and_token(&f, "jku")?;
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn an_x5u_header_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let header = f.header_with("x5u", json!("https://evil.example/cert.pem"));
    f.refused(&f.signed(&header, &f.claims()), INVALID.0, INVALID.1)
        .await
}

async fn an_x5c_header_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let header = f.header_with("x5c", json!([STANDARD.encode(b"not a certificate")]));
    f.refused(&f.signed(&header, &f.claims()), INVALID.0, INVALID.1)
        .await
}

async fn a_crit_header_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    for crit in [json!(["exp"]), json!(["http://example.com/ext"]), json!([])] {
        let token = f.signed(&f.header_with("crit", crit), &f.claims());
        assert_error(f.app.verify(&token).await, INVALID.0, INVALID.1);
    }
    f.unharmed().await
}

async fn kid_with_path_traversal_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    for kid in ["../../../../../../dev/null", "/etc/passwd", "..\\..\\keys"] {
        let token = f.signed(&f.header_with("kid", json!(kid)), &f.claims());
        assert_error(f.app.verify(&token).await, INVALID.0, INVALID.1);
    }
    f.unharmed().await
}

async fn kid_with_sql_injection_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    for kid in [
        "' OR '1'='1",
        "x'; DROP TABLE signing_keys; --",
        &format!("{}' OR kid <> '", f.kid),
    ] {
        let token = f.signed(&f.header_with("kid", json!(kid)), &f.claims());
        assert_error(f.app.verify(&token).await, INVALID.0, INVALID.1);
    }
    f.unharmed().await
}

async fn a_truncated_token_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let genuine = &f.genuine.access_token;
    f.refused(&genuine[..genuine.len() - 10], INVALID.0, INVALID.1)
        .await
}

async fn two_segments_are_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let (header, payload, _) = f.genuine_parts();
    f.refused(&format!("{header}.{payload}"), INVALID.0, INVALID.1)
        .await
}

async fn five_segments_shaped_like_a_jwe_are_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let (header, payload, signature) = f.genuine_parts();
    let token = format!("{header}.{payload}.{signature}.{payload}.{signature}");
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn segments_that_are_not_base64url_are_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    f.refused("!!!.@@@.###", INVALID.0, INVALID.1).await
}

async fn padded_or_standard_base64_segments_are_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let header = f.header();
    let claims = f.claims();
    // A valid signature over the canonical encoding, re-encoded with padding or `+/`.
    let canonical = f.signed(&header, &claims);
    let signature = canonical.rsplit('.').next().expect("signature");
    let signature_bytes = URL_SAFE_NO_PAD.decode(signature)?;
    let padded = format!(
        "{}.{}.{}",
        URL_SAFE.encode(header.to_string()),
        URL_SAFE.encode(claims.to_string()),
        URL_SAFE.encode(&signature_bytes)
    );
    let standard = format!(
        "{}.{}.{}",
        STANDARD.encode(header.to_string()),
        STANDARD.encode(claims.to_string()),
        STANDARD.encode(&signature_bytes)
    );
    for token in [padded, standard] {
        if token == canonical {
            continue; // nothing to pad or translate in this encoding
        }
        assert_error(f.app.verify(&token).await, INVALID.0, INVALID.1);
    }
    f.unharmed().await
}

async fn a_header_that_is_not_json_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let (_, payload, signature) = f.genuine_parts();
    let token = format!(
        "{}.{payload}.{signature}",
        URL_SAFE_NO_PAD.encode("not json")
    );
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_token_over_the_size_cap_is_refused_before_parsing(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    // Valid signature, but a claim that pushes the token past MAX_ACCESS_TOKEN_BYTES (4 KiB).
    let token = f.signed(&f.header(), &f.with("jti", json!("j".repeat(5000))));
    assert!(token.len() > auth_api::access_token::MAX_ACCESS_TOKEN_BYTES);
    f.refused(&token, INVALID.0, INVALID.1).await
}

async fn a_megabyte_token_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let (header, _, signature) = f.genuine_parts();
    let token = format!("{header}.{}.{signature}", "A".repeat(1024 * 1024));
    // Larger than AUTH_MAX_REQUEST_BYTES: refused before it reaches the handler.
    f.refused(&token, Code::InvalidArgument, "REQUEST_TOO_LARGE")
        .await
}

async fn a_refresh_token_presented_as_an_access_token_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    f.refused(&f.genuine.refresh_token, INVALID.0, INVALID.1)
        .await?;
    // And the confusion did not spend the refresh token.
    let next = f.app.refresh(&f.genuine.refresh_token).await?;
    f.app.verify(&next.access_token).await?;
    Ok(())
}

async fn an_exchanged_token_for_another_audience_is_refused_where_ours_is_expected(
    backend: Backend,
) -> TestResult {
    let f = Forgery::new_with(&backend, |settings| {
        settings.exchange_audiences = vec!["payments".into()];
    })
    .await?;
    let exchanged = f
        .app
        .auth
        .clone()
        .exchange_token(pb::ExchangeTokenRequest {
            subject_token: f.genuine.access_token.clone(),
            audience: "payments".into(),
        })
        .await?
        .into_inner()
        .access_token;
    f.refused(&exchanged, INVALID.0, INVALID.1).await?;
    // A LocalVerifier for our audience refuses it too.
    let verifier = local_verifier(&f.app, "api", |_| {}).await?;
    assert!(matches!(
        verifier.verify_token(&exchanged).await,
        Err(VerifyError::Invalid)
    ));
    Ok(())
}

async fn a_session_token_presented_to_a_local_verifier_is_refused(backend: Backend) -> TestResult {
    let f = Forgery::new(&backend).await?;
    let email = unique_email("session");
    f.app.register(&email).await?;
    let session = session_token(&f.app.login(&email, CredentialKind::Session).await?)?;
    let verifier = local_verifier(&f.app, "api", |_| {}).await?;
    // A LocalVerifier accepts access tokens only: an opaque token cannot be checked offline.
    assert!(matches!(
        verifier.verify_token(&session).await,
        Err(VerifyError::Invalid)
    ));
    assert!(matches!(
        verifier.verify_token(&f.genuine.refresh_token).await,
        Err(VerifyError::Invalid)
    ));
    verifier.verify_token(&f.genuine.access_token).await?;
    f.app.verify(&session).await?;
    f.unharmed().await
}

/// A thief must not stretch a stolen access token past its expiry by exchanging it, again and
/// again, for a fresh one of the same audience.
async fn an_access_token_cannot_outlive_its_ttl_by_exchanging_itself(
    backend: Backend,
) -> TestResult {
    let ttl = std::time::Duration::from_secs(3);
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.access_token_ttl = ttl;
        settings.token_leeway = std::time::Duration::ZERO;
        // The apps' own audience may be minted for, so the chain has something to try.
        settings.exchange_audiences = vec!["api".into()];
    })
    .await?;
    let (_, stolen) = app.user_with_tokens(&unique_email("chain")).await?;
    let issued = tokio::time::Instant::now();
    let mut current = stolen.access_token.clone();
    let mut exchanges = 0;
    for _ in 0..6 {
        let request = pb::ExchangeTokenRequest {
            subject_token: current.clone(),
            audience: "api".into(),
        };
        let Ok(next) = app.auth.clone().exchange_token(request).await else {
            break;
        };
        exchanges += 1;
        current = next.into_inner().access_token;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(exchanges >= 1, "no exchange was made at all");
    // Whenever the chain was cut, its last link dies with the stolen token.
    tokio::time::sleep_until(issued + ttl + std::time::Duration::from_millis(1100)).await;
    assert_error(
        app.verify(&current).await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );
    // The session itself is untouched: its refresh token still works.
    app.refresh(&stolen.refresh_token).await?;
    Ok(())
}
