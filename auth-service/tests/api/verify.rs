use std::time::Duration;

use auth_api::v1::{self as pb, CredentialKind};
use tonic::Code;

use crate::helpers::{
    Backend, TestApp, TestResult, assert_error, on_both_backends, session_token, unique_email,
};

on_both_backends!(
    verify_returns_the_principal_behind_an_access_token_or_a_session_token,
    verify_requires_the_requested_audience,
    an_expired_access_token_is_rejected,
    a_session_token_expires_when_idle_and_use_keeps_it_alive,
    a_revoked_session_is_rejected_by_verify_at_once,
);

async fn verify_returns_the_principal_behind_an_access_token_or_a_session_token(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("verify");
    let (login, tokens) = app.user_with_tokens(&email).await?;

    let verified = app.verify(&tokens.access_token).await?;
    assert_eq!(verified.kind(), CredentialKind::Tokens);
    assert_eq!(verified.expires_at, tokens.access_expires_at);
    let principal = verified.principal.expect("principal");
    assert_eq!(
        (
            principal.user_id.as_str(),
            principal.email.as_str(),
            principal.session_id.as_str()
        ),
        (
            login.user_id.as_str(),
            email.as_str(),
            login.session_id.as_str()
        )
    );
    assert!(principal.roles.is_empty());

    let session = app.login(&email, CredentialKind::Session).await?;
    let verified = app.verify(&session_token(&session)?).await?;
    assert_eq!(verified.kind(), CredentialKind::Session);
    assert_eq!(
        verified.principal.expect("principal").session_id,
        session.session_id
    );
    Ok(())
}

async fn verify_requires_the_requested_audience(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("aud")).await?;
    let verify = |audience: &str| {
        let mut client = app.auth.clone();
        let request = pb::VerifyRequest {
            token: tokens.access_token.clone(),
            audience: audience.into(),
        };
        async move { client.verify(request).await }
    };
    verify("api").await?;
    assert_error(
        verify("payments").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    Ok(())
}

async fn an_expired_access_token_is_rejected(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        // `exp` is in whole seconds, so a 2 s token lives between 1 and 2 s.
        settings.access_token_ttl = Duration::from_secs(2);
        settings.token_leeway = Duration::ZERO;
    })
    .await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("expired")).await?;
    app.verify(&tokens.access_token).await?;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );
    Ok(())
}

async fn a_session_token_expires_when_idle_and_use_keeps_it_alive(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_idle_timeout = Duration::from_secs(2)
    })
    .await?;
    let email = unique_email("idle");
    app.register(&email).await?;
    let token = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    // Used every 1.2 s, it outlives its 2 s idle timeout...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        app.verify(&token).await?;
    }
    // ...and left alone for longer, it ends.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_error(
        app.verify(&token).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
    );
    Ok(())
}

async fn a_revoked_session_is_rejected_by_verify_at_once(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("revoked");
    let (_, tokens) = app.user_with_tokens(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    app.verify(&tokens.access_token).await?;
    app.verify(&session).await?;

    for token in [&tokens.access_token, &session] {
        app.auth
            .clone()
            .logout(pb::LogoutRequest {
                token: token.clone(),
            })
            .await?;
        assert_error(
            app.verify(token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    Ok(())
}
