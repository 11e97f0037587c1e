use std::time::Duration;

use auth_service::domain::opaque_token::OpaqueToken;
use tonic::Code;

use crate::helpers::{Backend, TestApp, TestResult, assert_error, on_both_backends, unique_email};

on_both_backends!(
    refresh_rotates_and_the_new_pair_works,
    a_replayed_refresh_token_revokes_the_whole_session,
    within_the_grace_window_the_predecessor_is_reissued_once_and_kills_its_successor,
    after_the_grace_window_the_predecessor_counts_as_reuse,
    racing_refreshes_of_one_token_leave_exactly_one_live_refresh_token,
    racing_refreshes_without_grace_succeed_at_most_once_and_end_the_session,
    racing_refreshes_across_two_replicas_leave_exactly_one_live_refresh_token,
    the_session_lifetime_caps_every_refresh,
    a_refresh_token_is_not_an_access_token_and_vice_versa,
    an_unused_refresh_token_dies_after_its_lifetime,
);

async fn refresh_rotates_and_the_new_pair_works(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (login, first) = app.user_with_tokens(&unique_email("rotate")).await?;
    let second = app.refresh(&first.refresh_token).await?;
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    let verified = app.verify(&second.access_token).await?;
    assert_eq!(
        verified.principal.expect("principal").session_id,
        login.session_id
    );
    let third = app.refresh(&second.refresh_token).await?;
    app.verify(&third.access_token).await?;
    Ok(())
}

async fn a_replayed_refresh_token_revokes_the_whole_session(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.refresh_reuse_grace = Duration::ZERO
    })
    .await?;
    let (_, first) = app.user_with_tokens(&unique_email("replay")).await?;
    let second = app.refresh(&first.refresh_token).await?;

    assert_error(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    // The thief's replay ended the session for the legitimate holder too.
    assert_error(
        app.refresh(&second.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.verify(&second.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn within_the_grace_window_the_predecessor_is_reissued_once_and_kills_its_successor(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?; // default grace: 10 s
    let (_, first) = app.user_with_tokens(&unique_email("grace")).await?;
    let lost = app.refresh(&first.refresh_token).await?; // the response the client never saw
    let retried = app.refresh(&first.refresh_token).await?;
    assert_ne!(retried.refresh_token, lost.refresh_token);
    app.verify(&retried.access_token).await?;

    // The pair that was lost is dead, and presenting it is reuse.
    assert_error(
        app.refresh(&lost.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    assert_error(
        app.verify(&retried.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn after_the_grace_window_the_predecessor_counts_as_reuse(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.refresh_reuse_grace = Duration::from_millis(500)
    })
    .await?;
    let (_, first) = app.user_with_tokens(&unique_email("late")).await?;
    let second = app.refresh(&first.refresh_token).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_error(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    assert_error(
        app.refresh(&second.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

/// Refreshes `refresh_token` `count` times at once, spread over `apps`.
async fn race(
    apps: &[&TestApp],
    refresh_token: &str,
    count: usize,
) -> Vec<Result<auth_api::v1::TokenPair, tonic::Status>> {
    let calls = (0..count).map(|i| {
        let mut client = apps[i % apps.len()].auth.clone();
        let request = auth_api::v1::RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        async move {
            client
                .refresh(request)
                .await
                .map(|r| r.into_inner().tokens.expect("tokens"))
        }
    });
    futures_join_all(calls).await
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

/// How many of `tokens` are the session's live refresh token, read straight from the store.
async fn live_refresh_tokens(
    app: &TestApp,
    session_id: &str,
    tokens: &[String],
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let store = app.database.store().await?;
    let session = store.find_session(session_id).await?.expect("session");
    let current = session.refresh_current_hash.expect("a live refresh token");
    let mut live = 0;
    for token in tokens {
        if OpaqueToken::hash_of(token)?.0 == current {
            live += 1;
        }
    }
    Ok(live)
}

/// Of the refresh tokens the racing calls received, exactly one is the session's live one.
async fn assert_exactly_one_live(
    app: &TestApp,
    session_id: &str,
    results: Vec<Result<auth_api::v1::TokenPair, tonic::Status>>,
) -> TestResult {
    let issued: Vec<String> = results
        .into_iter()
        .filter_map(Result::ok)
        .map(|pair| pair.refresh_token)
        .collect();
    assert!(!issued.is_empty());
    assert_eq!(live_refresh_tokens(app, session_id, &issued).await?, 1);
    Ok(())
}

async fn racing_refreshes_of_one_token_leave_exactly_one_live_refresh_token(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (login, first) = app.user_with_tokens(&unique_email("race")).await?;
    let results = race(&[&app], &first.refresh_token, 12).await;
    assert_exactly_one_live(&app, &login.session_id, results).await
}

async fn racing_refreshes_without_grace_succeed_at_most_once_and_end_the_session(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.refresh_reuse_grace = Duration::ZERO
    })
    .await?;
    let (_, first) = app.user_with_tokens(&unique_email("race0")).await?;
    let results = race(&[&app], &first.refresh_token, 8).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    // The first rotation of the head always wins its compare-and-set; every later presentation
    // of the same token is a replay.
    assert_eq!(
        winners.len(),
        1,
        "{} refreshes of one token succeeded",
        winners.len()
    );
    for result in &results {
        if let Err(status) = result {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        }
    }
    // Concurrent presentation of one refresh token is indistinguishable from theft.
    assert_error(
        app.refresh(&winners[0].refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn racing_refreshes_across_two_replicas_leave_exactly_one_live_refresh_token(
    backend: Backend,
) -> TestResult {
    let first_replica = TestApp::spawn(&backend).await?;
    let second_replica = TestApp::start(
        first_replica.database.clone(),
        first_replica.settings.clone(),
    )
    .await?;
    let (login, first) = first_replica
        .user_with_tokens(&unique_email("replicas"))
        .await?;
    let results = race(&[&first_replica, &second_replica], &first.refresh_token, 12).await;
    assert_exactly_one_live(&first_replica, &login.session_id, results).await
}

async fn the_session_lifetime_caps_every_refresh(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_max_lifetime = Duration::from_secs(2)
    })
    .await?;
    let session_end = crate::helpers::unix_now() + 3;
    let (_, first) = app.user_with_tokens(&unique_email("lifetime")).await?;
    assert!(first.refresh_expires_at.expect("expiry").seconds <= session_end);
    let second = app.refresh(&first.refresh_token).await?;
    assert!(second.refresh_expires_at.expect("expiry").seconds <= session_end);
    assert!(second.access_expires_at.expect("expiry").seconds <= session_end);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_error(
        app.refresh(&second.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
    );
    Ok(())
}

async fn a_refresh_token_is_not_an_access_token_and_vice_versa(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("confusion")).await?;
    assert_error(
        app.verify(&tokens.refresh_token).await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    assert_error(
        app.refresh(&tokens.access_token).await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // Neither confusion harmed the session.
    app.verify(&tokens.access_token).await?;
    app.refresh(&tokens.refresh_token).await?;
    Ok(())
}

async fn an_unused_refresh_token_dies_after_its_lifetime(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.access_token_ttl = Duration::from_secs(1);
        settings.refresh_token_ttl = Duration::from_secs(2);
    })
    .await?;
    let issued_at = crate::helpers::unix_now();
    let (_, tokens) = app.user_with_tokens(&unique_email("refresh-ttl")).await?;
    let expires_at = tokens
        .refresh_expires_at
        .ok_or("refresh_expires_at")?
        .seconds;
    assert!(
        (issued_at + 1..=issued_at + 3).contains(&expires_at),
        "AUTH_REFRESH_TOKEN_TTL is 2 s, the token lives {} s",
        expires_at - issued_at
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
    );
    Ok(())
}
