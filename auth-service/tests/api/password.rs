use auth_api::v1::{self as pb, CredentialKind};
use tonic::Code;

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, session_token,
    token_pair, unique_email, with_bearer,
};

on_both_backends!(
    changing_the_password_ends_the_other_sessions_and_retires_the_old_password,
    changing_the_password_requires_the_current_one_and_a_valid_new_one,
);

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn changing_the_password_ends_the_other_sessions_and_retires_the_old_password(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("change");
    let (_, app_tokens) = app.user_with_tokens(&email).await?;
    let elsewhere = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let current = token_pair(&app.login_management(&email, CredentialKind::Tokens).await?)?;
    let change = |bearer: &str| {
        let request = with_bearer(
            bearer,
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: NEW_PASSWORD.into(),
            },
        );
        let mut client = app.auth.clone();
        async move { client.change_password(request.expect("request")).await }
    };

    // An app's credential cannot change the password, even with the right current one.
    assert_error(
        change(&app_tokens.access_token).await,
        Code::PermissionDenied,
        "MANAGEMENT_CREDENTIAL_REQUIRED",
    );
    let response = change(&current.access_token).await?.into_inner();
    assert_eq!(response.revoked_count, 2);
    for token in [&app_tokens.access_token, &elsewhere] {
        assert_error(
            app.verify(token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    // The session the change was made with is kept.
    let left = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &current.access_token,
            pb::ListSessionsRequest::default(),
        )?)
        .await?
        .into_inner()
        .sessions;
    assert_eq!(left.len(), 1);
    assert!(left[0].current);

    assert_error(
        app.login(&email, CredentialKind::Tokens).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    app.auth
        .clone()
        .login(pb::LoginRequest {
            email,
            password: NEW_PASSWORD.into(),
            kind: 0,
            management: false,
        })
        .await?;
    Ok(())
}

async fn changing_the_password_requires_the_current_one_and_a_valid_new_one(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("guard");
    app.register(&email).await?;
    let manager = app.manager_token(&email).await?;
    let change = |current: &str, new: &str| {
        let request = with_bearer(
            &manager,
            pb::ChangePasswordRequest {
                current_password: current.into(),
                new_password: new.into(),
            },
        );
        let mut client = app.auth.clone();
        async move { client.change_password(request.expect("request")).await }
    };
    assert_error(
        change("wrong password", NEW_PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    assert_error(
        change(PASSWORD, "short").await,
        Code::InvalidArgument,
        "WEAK_PASSWORD",
    );
    // Nothing changed: the old password still logs in.
    app.login(&email, CredentialKind::Tokens).await?;
    Ok(())
}
