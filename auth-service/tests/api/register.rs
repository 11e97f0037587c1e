use auth_api::v1 as pb;
use tonic::Code;

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, unique_email,
};

on_both_backends!(
    registering_returns_a_user_id_and_an_email_is_taken_whatever_its_case,
    registration_rejects_malformed_emails_and_out_of_range_passwords,
    registration_can_be_turned_off,
);

async fn registering_returns_a_user_id_and_an_email_is_taken_whatever_its_case(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("Mixed.Case");
    let user_id = app.register(&email).await?;
    assert!(!user_id.is_empty());

    assert_error(
        app.register(&email).await,
        Code::AlreadyExists,
        "EMAIL_TAKEN",
    );
    assert_error(
        app.register(&email.to_uppercase()).await,
        Code::AlreadyExists,
        "EMAIL_TAKEN",
    );
    Ok(())
}

async fn registration_rejects_malformed_emails_and_out_of_range_passwords(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let register = |email: String, password: String| {
        let mut client = app.auth.clone();
        async move {
            client
                .register(pb::RegisterRequest { email, password })
                .await
        }
    };
    assert_error(
        register("not-an-email".into(), PASSWORD.into()).await,
        Code::InvalidArgument,
        "INVALID_EMAIL",
    );
    assert_error(
        register(unique_email("short"), "7 chars".into()).await,
        Code::InvalidArgument,
        "WEAK_PASSWORD",
    );
    assert_error(
        register(unique_email("long"), "x".repeat(1025)).await,
        Code::InvalidArgument,
        "PASSWORD_TOO_LONG",
    );
    // The limits are inclusive: 8 characters and 1024 bytes are fine.
    register(unique_email("eight"), "8 chars!".into()).await?;
    register(unique_email("max"), "y".repeat(1024)).await?;
    Ok(())
}

async fn registration_can_be_turned_off(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| settings.allow_registration = false).await?;
    assert_error(
        app.register(&unique_email("closed")).await,
        Code::FailedPrecondition,
        "REGISTRATION_DISABLED",
    );
    Ok(())
}
