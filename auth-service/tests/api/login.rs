use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use auth_api::v1::{self as pb, CredentialKind};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Code;

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, session_token,
    token_pair, unique_email, with_bearer,
};

on_both_backends!(
    login_hands_out_a_token_pair_by_default_and_a_session_token_on_request,
    a_wrong_password_and_an_unknown_email_get_the_same_answer_in_the_same_time,
    the_access_token_is_a_compact_eddsa_at_jwt_with_exactly_the_documented_claims,
    the_per_user_session_cap_ends_the_oldest_session,
);

async fn login_hands_out_a_token_pair_by_default_and_a_session_token_on_request(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("login");
    let user_id = app.register(&email).await?;

    let default = app.login(&email, CredentialKind::Unspecified).await?;
    assert_eq!(default.user_id, user_id);
    assert!(!default.session_id.is_empty());
    let tokens = token_pair(&default)?;
    let now = crate::helpers::unix_now();
    let access_expiry = tokens.access_expires_at.expect("access expiry").seconds;
    assert!(
        (access_expiry - now - 15 * 60).abs() <= 5,
        "access token lives 15 minutes"
    );
    let refresh_expiry = tokens.refresh_expires_at.expect("refresh expiry").seconds;
    assert!(
        (refresh_expiry - now - 7 * 24 * 3600).abs() <= 5,
        "refresh token lives 7 days"
    );

    let session = app.login(&email, CredentialKind::Session).await?;
    assert_ne!(session.session_id, default.session_id);
    let verified = app.verify(&session_token(&session)?).await?;
    assert_eq!(verified.kind(), CredentialKind::Session);
    assert_eq!(
        verified.principal.expect("principal").session_id,
        session.session_id
    );

    // Email lookup is case-insensitive.
    app.login(&email.to_uppercase(), CredentialKind::Tokens)
        .await?;
    Ok(())
}

async fn a_wrong_password_and_an_unknown_email_get_the_same_answer_in_the_same_time(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("enum");
    app.register(&email).await?;

    let attempt = |email: String, password: &str| {
        let mut client = app.auth.clone();
        let request = pb::LoginRequest {
            email,
            password: password.into(),
            kind: 0,
            management: false,
        };
        async move {
            let started = Instant::now();
            let result = client.login(request).await;
            (result, started.elapsed())
        }
    };
    let mut wrong_password_times = Vec::new();
    let mut unknown_email_times = Vec::new();
    for _ in 0..7 {
        let (wrong, wrong_time) = attempt(email.clone(), "not the password").await;
        let (unknown, unknown_time) = attempt(unique_email("nobody"), PASSWORD).await;
        let (wrong, unknown) = (
            wrong.expect_err("wrong password"),
            unknown.expect_err("unknown email"),
        );
        assert_eq!(
            (wrong.code(), wrong.message()),
            (unknown.code(), unknown.message())
        );
        assert_error::<()>(Err(wrong), Code::Unauthenticated, "INVALID_CREDENTIALS");
        assert_error::<()>(Err(unknown), Code::Unauthenticated, "INVALID_CREDENTIALS");
        wrong_password_times.push(wrong_time);
        unknown_email_times.push(unknown_time);
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (wrong, unknown) = (
        median(&mut wrong_password_times),
        median(&mut unknown_email_times),
    );
    // Both pay one full argon2 verification; without the dummy hash, the unknown email would
    // answer in a fraction of the time.
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "unknown {unknown:?} vs wrong password {wrong:?}"
    );
    Ok(())
}

async fn the_access_token_is_a_compact_eddsa_at_jwt_with_exactly_the_documented_claims(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("claims")).await?;
    let parts: Vec<&str> = tokens.access_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0])?)?;
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());

    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1])?)?;
    let names: BTreeSet<&str> = claims
        .as_object()
        .expect("claims object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "iss",
            "sub",
            "aud",
            "sid",
            "iat",
            "exp",
            "jti",
            "roles",
            "auth_time",
            "email_verified"
        ])
    );
    assert_eq!(claims["sub"], login.user_id.as_str());
    assert_eq!(claims["sid"], login.session_id.as_str());
    assert_eq!(claims["iss"], "auth");
    assert_eq!(claims["aud"], "api");
    // The login's time (OpenID Connect Core 1.0 section 2): here, this very login.
    assert_eq!(claims["auth_time"], claims["iat"]);
    // OpenID Connect's claim: nobody has proved this address yet (README "Accounts").
    assert_eq!(claims["email_verified"], false);
    // 96-bit ids, a 72-bit jti and a 48-bit kid keep the token compact: an Ed25519 signature
    // alone is 86 characters, `auth_time` costs about 30 more and `email_verified` 31.
    assert!(
        tokens.access_token.len() <= 416,
        "{} bytes",
        tokens.access_token.len()
    );
    Ok(())
}

async fn the_per_user_session_cap_ends_the_oldest_session(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| settings.max_sessions_per_user = 2).await?;
    let email = unique_email("cap");
    let (_, first) = app.user_with_tokens(&email).await?;
    let second = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    app.verify(&first.access_token).await?;

    let third_login = app.login(&email, CredentialKind::Tokens).await?;
    let third = token_pair(&third_login)?;
    assert_error(
        app.verify(&first.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.verify(&second.access_token).await?;
    // A management session counts too: it ends the oldest one left.
    let manager = app.login_management(&email, CredentialKind::Tokens).await?;
    assert_error(
        app.verify(&second.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.verify(&third.access_token).await?;
    let sessions = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &token_pair(&manager)?.access_token,
            pb::ListSessionsRequest::default(),
        )?)
        .await?
        .into_inner()
        .sessions;
    let ids: Vec<&str> = sessions.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(
        ids,
        [manager.session_id.as_str(), third_login.session_id.as_str()]
    );
    Ok(())
}
