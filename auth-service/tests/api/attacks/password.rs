//! Password checks outside Login (NIST SP 800-63B section 5.2.2, ASVS 5.0 V6.3): a stolen token
//! must not turn `ChangePassword` into an unlimited guessing oracle, and anonymous registration
//! must not queue without bound for the hashing threads.

use std::time::Duration;

use auth_api::v1 as pb;
use tonic::{Code, Status};

use super::live_session_ids;
use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, token_pair,
    unique_email, with_bearer,
};

on_both_backends!(
    a_stolen_token_cannot_guess_the_password_past_the_lockout,
    password_change_guesses_count_against_the_address_budget,
    a_registration_storm_is_shed_instead_of_queued,
);

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change_password(app: &TestApp, bearer: &str, current: &str) -> Result<u32, Status> {
    let request = with_bearer(
        bearer,
        pb::ChangePasswordRequest {
            current_password: current.into(),
            new_password: NEW_PASSWORD.into(),
        },
    )
    .map_err(|error| Status::internal(error.to_string()))?;
    let response = app.auth.clone().change_password(request).await?;
    Ok(response.into_inner().revoked_count)
}

async fn a_stolen_token_cannot_guess_the_password_past_the_lockout(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.account_lockout_threshold = 3;
        settings.account_lockout_base = Duration::from_secs(60);
        settings.account_lockout_max = Duration::from_secs(60);
        settings.login_rate_per_address = 1_000;
    })
    .await?;
    let email = unique_email("oracle");
    let (_, victims) = app.user_with_tokens(&email).await?;
    // An app's token cannot even try: only a management session's may change the password.
    assert_error(
        change_password(&app, &victims.access_token, "guess by an app").await,
        Code::PermissionDenied,
        "MANAGEMENT_CREDENTIAL_REQUIRED",
    );
    let stolen = token_pair(
        &app.login_management(&email, pb::CredentialKind::Tokens)
            .await?,
    )?;

    for guess in 0..3 {
        assert_error(
            change_password(&app, &stolen.access_token, &format!("guess {guess} wrong")).await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    // Locked: the right password is refused exactly like a wrong one, here and at Login.
    assert_error(
        change_password(&app, &stolen.access_token, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    assert_error(
        app.login(&email, pb::CredentialKind::Tokens).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    // The password did not change, so the victim's other session was not ended.
    app.verify(&victims.access_token).await?;
    Ok(())
}

async fn password_change_guesses_count_against_the_address_budget(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.login_rate_per_address = 3;
        settings.account_lockout_threshold = 0;
    })
    .await?;
    // One login from this address: one of the three password checks a minute.
    let email = unique_email("budget");
    app.register(&email).await?;
    let manager = app.manager_token(&email).await?;
    for guess in 0..2 {
        assert_error(
            change_password(&app, &manager, &format!("guess {guess} wrong")).await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    assert_error(
        change_password(&app, &manager, PASSWORD).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    // Refused, not ended: the session is still live.
    assert_eq!(live_session_ids(&app, &manager).await?.len(), 1);
    Ok(())
}

async fn a_registration_storm_is_shed_instead_of_queued(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.hashing_concurrency = Some(1);
        settings.hashing_queue_limit = 1;
        settings.login_rate_per_address = 1_000;
        // Costlier hashes, so that the storm overlaps.
        settings.argon2_iterations = 6;
    })
    .await?;
    let storm: Vec<_> = (0..12)
        .map(|i| {
            let mut client = app.auth.clone();
            let request = pb::RegisterRequest {
                email: unique_email(&format!("storm{i}")),
                password: PASSWORD.into(),
            };
            tokio::spawn(async move { client.register(request).await })
        })
        .collect();
    let (mut served, mut shed) = (0, 0);
    for call in storm {
        match call.await? {
            Ok(_) => served += 1,
            Err(status) => {
                assert_error::<()>(Err(status), Code::ResourceExhausted, "OVERLOADED");
                shed += 1;
            }
        }
    }
    // One hashing, one waiting: the rest are refused at once rather than queued.
    assert!(served >= 1, "no registration was served");
    assert!(
        shed >= 1,
        "twelve registrations queued for one hashing slot"
    );
    Ok(())
}
