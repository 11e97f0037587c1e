use auth_api::v1::{self as pb, CredentialKind};
use tonic::Code;

use crate::helpers::{
    Backend, TestApp, TestResult, assert_error, on_both_backends, session_token, unique_email,
};

on_both_backends!(
    logout_with_any_credential_ends_the_session_and_is_idempotent,
    logout_with_a_token_that_is_not_ours_is_rejected,
);

async fn logout_with_any_credential_ends_the_session_and_is_idempotent(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("logout");
    let (_, by_access) = app.user_with_tokens(&email).await?;
    let by_refresh = crate::helpers::token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    let by_session = session_token(&app.login(&email, CredentialKind::Session).await?)?;

    let logout = |token: String| {
        let mut client = app.auth.clone();
        async move { client.logout(pb::LogoutRequest { token }).await }
    };
    logout(by_access.access_token.clone()).await?;
    assert_error(
        app.verify(&by_access.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&by_access.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );

    logout(by_refresh.refresh_token.clone()).await?;
    assert_error(
        app.verify(&by_refresh.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );

    logout(by_session.clone()).await?;
    assert_error(
        app.verify(&by_session).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );

    // Logging out of an ended session again is not an error.
    logout(by_access.access_token).await?;
    logout(by_refresh.refresh_token).await?;
    logout(by_session).await?;
    Ok(())
}

async fn logout_with_a_token_that_is_not_ours_is_rejected(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    for (token, reason) in [
        ("", "CREDENTIAL_MISSING"),
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "TOKEN_INVALID",
        ),
        ("a.b.c", "TOKEN_INVALID"),
        ("garbage", "TOKEN_INVALID"),
    ] {
        let result = app
            .auth
            .clone()
            .logout(pb::LogoutRequest {
                token: token.into(),
            })
            .await;
        assert_error(result, Code::Unauthenticated, reason);
    }
    Ok(())
}
