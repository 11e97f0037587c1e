//! ExchangeToken: a session's credential turned into a short-lived token for one audience.

use std::time::Duration;

use auth_api::{
    VerifyError,
    v1::{self as pb, CredentialKind},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Code;

use crate::helpers::{
    Backend, TestApp, TestResult, assert_error, local_verifier, on_both_backends, session_token,
    unique_email, wait_until_rejected,
};

on_both_backends!(
    an_exchanged_token_is_for_one_audience_and_tied_to_the_same_session,
    revoking_the_session_kills_its_exchanged_tokens,
    exchange_refuses_bad_subjects_and_unlisted_audiences,
    logout_with_an_exchanged_token_ends_its_session,
);

/// A server that may mint exchanged tokens for `payments` (AUTH_EXCHANGE_AUDIENCES lists none
/// by default).
async fn spawn_with_payments(
    backend: &Backend,
) -> Result<TestApp, Box<dyn std::error::Error + Send + Sync>> {
    TestApp::spawn_with(backend, |settings| {
        settings.exchange_audiences = vec!["payments".into()]
    })
    .await
}

async fn exchange(
    app: &TestApp,
    subject: &str,
    audience: &str,
) -> Result<pb::ExchangeTokenResponse, tonic::Status> {
    let request = pb::ExchangeTokenRequest {
        subject_token: subject.into(),
        audience: audience.into(),
    };
    Ok(app.auth.clone().exchange_token(request).await?.into_inner())
}

async fn verify_for(
    app: &TestApp,
    token: &str,
    audience: &str,
) -> Result<pb::VerifyResponse, tonic::Status> {
    let request = pb::VerifyRequest {
        token: token.into(),
        audience: audience.into(),
    };
    Ok(app.auth.clone().verify(request).await?.into_inner())
}

async fn an_exchanged_token_is_for_one_audience_and_tied_to_the_same_session(
    backend: Backend,
) -> TestResult {
    let app = spawn_with_payments(&backend).await?;
    let email = unique_email("exchange");
    app.register(&email).await?;
    let login = app.login(&email, CredentialKind::Session).await?;

    let exchanged = exchange(&app, &session_token(&login)?, "payments").await?;
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(exchanged.access_token.split('.').nth(1).ok_or("payload")?)?,
    )?;
    assert_eq!(claims["aud"], "payments");
    assert_eq!(claims["sid"], login.session_id.as_str());
    let lifetime = claims["exp"].as_i64().ok_or("exp")? - claims["iat"].as_i64().ok_or("iat")?;
    assert!(
        lifetime <= 5 * 60,
        "exchanged tokens are short-lived: {lifetime} s"
    );

    let verified = verify_for(&app, &exchanged.access_token, "payments").await?;
    assert_eq!(
        verified.principal.ok_or("principal")?.session_id,
        login.session_id
    );
    // Not a general-purpose token: the service's own audience refuses it.
    assert_error(
        verify_for(&app, &exchanged.access_token, "").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    Ok(())
}

async fn revoking_the_session_kills_its_exchanged_tokens(backend: Backend) -> TestResult {
    let app = spawn_with_payments(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("exkill")).await?;
    let exchanged = exchange(&app, &tokens.access_token, "payments")
        .await?
        .access_token;
    let payments = local_verifier(&app, "payments", |_| {}).await?;
    payments.verify_token(&exchanged).await?;

    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.refresh_token.clone(),
        })
        .await?;
    assert_error(
        verify_for(&app, &exchanged, "payments").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let error = wait_until_rejected(&payments, &exchanged, Duration::from_secs(5)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    assert_error(
        exchange(&app, &tokens.access_token, "payments").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn exchange_refuses_bad_subjects_and_unlisted_audiences(backend: Backend) -> TestResult {
    let app = spawn_with_payments(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("exbad")).await?;
    assert_error(
        exchange(&app, &tokens.access_token, "").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_error(
        exchange(&app, &tokens.access_token, "ledger").await,
        Code::PermissionDenied,
        "AUDIENCE_NOT_ALLOWED",
    );
    assert_error(
        exchange(&app, &tokens.refresh_token, "payments").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    assert_error(
        exchange(&app, "forged.token.value", "payments").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // An exchanged token cannot be exchanged again into a broader one.
    let exchanged = exchange(&app, &tokens.access_token, "payments")
        .await?
        .access_token;
    assert_error(
        exchange(&app, &exchanged, "payments").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    Ok(())
}

async fn logout_with_an_exchanged_token_ends_its_session(backend: Backend) -> TestResult {
    let app = spawn_with_payments(&backend).await?;
    let email = unique_email("exlogout");
    app.register(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let exchanged = exchange(&app, &session, "payments").await?.access_token;
    app.auth
        .clone()
        .logout(pb::LogoutRequest { token: exchanged })
        .await?;
    assert_error(
        app.verify(&session).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}
