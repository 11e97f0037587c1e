//! Client deadlines (`grpc-timeout`) cancel the server's work: a call abandoned while its
//! password is being hashed leaves nothing behind (no session, no account), and calls cancelled
//! while queued for hashing give their queue place back.

use std::time::Duration;

use auth_api::v1::{self as pb, CredentialKind};
use tonic::{Code, Request};

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, on_both_backends, token_pair, unique_email, with_bearer,
};

on_both_backends!(
    a_login_abandoned_by_its_deadline_creates_no_session,
    a_registration_abandoned_by_its_deadline_creates_no_account,
);

/// A deadline far shorter than one argon2id hash.
const TOO_SHORT: Duration = Duration::from_millis(3);

fn with_deadline<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(deadline);
    request
}

fn login_request(email: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        email: email.to_owned(),
        password: PASSWORD.to_owned(),
        kind: CredentialKind::Tokens as i32,
        management: false,
    }
}

#[track_caller]
fn assert_deadline_passed<T: std::fmt::Debug>(result: Result<T, tonic::Status>) {
    let status = result.expect_err("the call outlived its deadline");
    // tonic's server answers an expired `grpc-timeout` with CANCELLED, gRPC-Go with
    // DEADLINE_EXCEEDED; either way the call did not complete.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
}

async fn a_login_abandoned_by_its_deadline_creates_no_session(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("deadline");
    app.register(&email).await?;
    for _ in 0..8 {
        let request = with_deadline(login_request(&email), TOO_SHORT);
        assert_deadline_passed(app.auth.clone().login(request).await);
    }
    // Hashes already running finish on the blocking pool; nothing may be written after them.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A management session, so that it may list them.
    let tokens = token_pair(&app.login_management(&email, CredentialKind::Tokens).await?)?;
    let sessions = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &tokens.access_token,
            pb::ListSessionsRequest::default(),
        )?)
        .await?
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 1, "only the completed login has a session");
    assert!(sessions[0].current);
    Ok(())
}

async fn a_registration_abandoned_by_its_deadline_creates_no_account(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("deadline-register");
    let request = with_deadline(
        pb::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.to_owned(),
        },
        TOO_SHORT,
    );
    assert_deadline_passed(app.auth.clone().register(request).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The email is still free (no half-made account holds it) and the login works.
    app.register(&email).await?;
    app.login(&email, CredentialKind::Tokens).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_cancelled_while_queued_for_hashing_give_their_place_back() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.hashing_concurrency = Some(1);
        settings.hashing_queue_limit = 2;
        settings.login_rate_per_address = 0;
        settings.account_lockout_threshold = 0;
        settings.argon2_iterations = 4;
    })
    .await?;
    let email = unique_email("queue");
    app.register(&email).await?;
    // Rounds of three at once: one hashes, two queue, and all three are cancelled.
    for _ in 0..5 {
        let abandoned: Vec<_> = (0..3)
            .map(|_| {
                let mut client = app.auth.clone();
                let request = with_deadline(login_request(&email), Duration::from_millis(15));
                tokio::spawn(async move { client.login(request).await })
            })
            .collect();
        for call in abandoned {
            // Cancelled by the deadline, or shed at once while an abandoned hash still runs.
            let status = call.await?.expect_err("the call outlived its deadline");
            assert!(
                matches!(
                    status.code(),
                    Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted
                ),
                "{status:?}"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The queue is empty again: three patient logins at once are all served (one hashes, two
    // wait), none shed as if the abandoned calls still held their places.
    let patient: Vec<_> = (0..3)
        .map(|_| {
            let mut client = app.auth.clone();
            let request = login_request(&email);
            tokio::spawn(async move { client.login(request).await })
        })
        .collect();
    for call in patient {
        call.await??;
    }
    Ok(())
}
