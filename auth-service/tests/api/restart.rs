use auth_api::v1::{self as pb, CredentialKind};
use tonic::Code;

use crate::helpers::{
    Backend, TestApp, TestResult, assert_error, on_both_backends, session_token, unique_email,
};

on_both_backends!(sessions_refresh_tokens_keys_and_revocations_survive_a_restart);

async fn sessions_refresh_tokens_keys_and_revocations_survive_a_restart(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("durable");
    let (_, live) = app.user_with_tokens(&email).await?;
    let rotated = app.refresh(&live.refresh_token).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let (_, ended) = app.user_with_tokens(&unique_email("ended")).await?;
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: ended.refresh_token.clone(),
        })
        .await?;

    let app = app.restart().await?;

    // Same signing key: the access token minted before the restart still verifies.
    app.verify(&rotated.access_token).await?;
    app.verify(&session).await?;
    let next = app.refresh(&rotated.refresh_token).await?;
    app.verify(&next.access_token).await?;
    assert_error(
        app.verify(&ended.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&ended.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}
