//! The revocation feed and the LocalVerifier that consumes it, on one server.

use std::time::Duration;

use auth_api::{
    LocalVerifier, VerifyError,
    v1::{self as pb, CredentialKind, WatchRevocationsRequest, revocation_event::Event},
};
use tonic::Streaming;

use crate::helpers::{
    Backend, TestApp, TestResult, local_verifier, on_both_backends, token_pair, unique_email,
    wait_until_rejected, with_bearer,
};

on_both_backends!(
    the_feed_replays_recent_revocations_then_streams_new_ones,
    a_feed_client_that_resumes_from_its_cursor_misses_no_revocation,
    a_local_verifier_accepts_live_tokens_and_rejects_revoked_sessions,
    a_local_verifier_rejects_every_token_of_a_user_whose_sessions_were_all_revoked,
    a_local_verifier_fails_closed_when_the_feed_stays_down_and_recovers_when_it_returns,
    a_local_verifier_accepts_tokens_signed_with_a_rotated_in_key,
);

/// Reads events up to and including `snapshot_complete`.
pub(crate) async fn read_snapshot(
    events: &mut Streaming<pb::RevocationEvent>,
) -> Result<Vec<pb::RevocationEvent>, Box<dyn std::error::Error + Send + Sync>> {
    let mut seen = Vec::new();
    loop {
        let event = events
            .message()
            .await?
            .ok_or("feed ended before its snapshot")?;
        let done = matches!(event.event, Some(Event::SnapshotComplete(_)));
        seen.push(event);
        if done {
            return Ok(seen);
        }
    }
}

pub(crate) fn revoked_session_ids(events: &[pb::RevocationEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match &event.event {
            Some(Event::SessionRevoked(revoked)) => Some(revoked.session_id.clone()),
            _ => None,
        })
        .collect()
}

/// The next SessionRevoked event, skipping heartbeats and key changes.
pub(crate) async fn next_revocation(
    events: &mut Streaming<pb::RevocationEvent>,
) -> Result<pb::RevocationEvent, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await??
            .ok_or("feed ended")?;
        if matches!(event.event, Some(Event::SessionRevoked(_))) {
            return Ok(event);
        }
    }
}

pub(crate) async fn logout(app: &TestApp, token: &str) -> TestResult {
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: token.into(),
        })
        .await?;
    Ok(())
}

async fn the_feed_replays_recent_revocations_then_streams_new_ones(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("feed");
    let (before_login, before) = app.user_with_tokens(&email).await?;
    logout(&app, &before.access_token).await?;

    let mut events = app
        .keys
        .clone()
        .watch_revocations(WatchRevocationsRequest::default())
        .await?
        .into_inner();
    let snapshot = read_snapshot(&mut events).await?;
    assert_eq!(
        revoked_session_ids(&snapshot),
        [before_login.session_id.as_str()]
    );
    let Some(Event::SessionRevoked(revoked)) = &snapshot[0].event else {
        panic!("expected a revocation first")
    };
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map_or(0, |t| t.seconds);
    assert!(
        seconds(&revoked.tokens_live_until) >= seconds(&revoked.revoked_at) + 15 * 60,
        "tokens outlive the revocation by their TTL"
    );
    assert!(snapshot.iter().any(
        |e| matches!(&e.event, Some(Event::KeysChanged(keys)) if keys.jwks_json.contains("Ed25519"))
    ));

    let after_login = app.login(&email, CredentialKind::Session).await?;
    logout(&app, &crate::helpers::session_token(&after_login)?).await?;
    let live = next_revocation(&mut events).await?;
    assert_eq!(revoked_session_ids(&[live]), [after_login.session_id]);
    Ok(())
}

async fn a_feed_client_that_resumes_from_its_cursor_misses_no_revocation(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("resume");
    app.register(&email).await?;
    let mut events = app
        .keys
        .clone()
        .watch_revocations(WatchRevocationsRequest::default())
        .await?
        .into_inner();
    read_snapshot(&mut events).await?;
    let first = app.login(&email, CredentialKind::Tokens).await?;
    logout(&app, &token_pair(&first)?.access_token).await?;
    let cursor = next_revocation(&mut events).await?.cursor;
    drop(events); // the client goes away...

    // ...while sessions keep being revoked.
    let mut missed = Vec::new();
    for _ in 0..3 {
        let login = app.login(&email, CredentialKind::Tokens).await?;
        logout(&app, &token_pair(&login)?.refresh_token).await?;
        missed.push(login.session_id);
    }

    let mut resumed = app
        .keys
        .clone()
        .watch_revocations(WatchRevocationsRequest {
            after_cursor: cursor,
        })
        .await?
        .into_inner();
    let replayed = revoked_session_ids(&read_snapshot(&mut resumed).await?);
    for session_id in &missed {
        assert!(
            replayed.contains(session_id),
            "{session_id} missing from {replayed:?}"
        );
    }
    Ok(())
}

async fn a_local_verifier_accepts_live_tokens_and_rejects_revoked_sessions(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("local");
    let (_, revoked_early) = app.user_with_tokens(&email).await?;
    logout(&app, &revoked_early.access_token).await?;

    let verifier: LocalVerifier = local_verifier(&app, "api", |_| {}).await?;
    assert!(verifier.feed_is_live());
    // Revoked before the verifier connected: known from the snapshot.
    assert!(matches!(
        verifier.verify_token(&revoked_early.access_token).await,
        Err(VerifyError::Revoked)
    ));

    let login = app.login(&email, CredentialKind::Tokens).await?;
    let tokens = token_pair(&login)?;
    let principal = verifier.verify_token(&tokens.access_token).await?;
    assert_eq!(
        (principal.user_id.as_str(), principal.session_id.as_str()),
        (login.user_id.as_str(), login.session_id.as_str())
    );
    assert!(matches!(
        verifier.verify_token("not.a.token").await,
        Err(VerifyError::Invalid)
    ));
    // A token for another audience is not for this service.
    assert!(matches!(
        local_verifier(&app, "payments", |_| {})
            .await?
            .verify_token(&tokens.access_token)
            .await,
        Err(VerifyError::Invalid)
    ));

    logout(&app, &tokens.refresh_token).await?;
    let error =
        wait_until_rejected(&verifier, &tokens.access_token, Duration::from_secs(5)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    Ok(())
}

async fn a_local_verifier_rejects_every_token_of_a_user_whose_sessions_were_all_revoked(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("all");
    let (_, first) = app.user_with_tokens(&email).await?;
    let second = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    let manager = app.manager_token(&email).await?;
    let verifier = local_verifier(&app, "api", |_| {}).await?;
    verifier.verify_token(&second.access_token).await?;

    app.auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &manager,
            pb::RevokeAllSessionsRequest::default(),
        )?)
        .await?;
    for token in [&first.access_token, &second.access_token] {
        let error = wait_until_rejected(&verifier, token, Duration::from_secs(5)).await?;
        assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    }
    // A login after the revocation is unaffected.
    let fresh = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    verifier.verify_token(&fresh.access_token).await?;
    Ok(())
}

async fn a_local_verifier_fails_closed_when_the_feed_stays_down_and_recovers_when_it_returns(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.feed_heartbeat_interval = Duration::from_millis(200)
    })
    .await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("outage")).await?;
    let verifier = local_verifier(&app, "api", |config| {
        // A second and a half of margin for the check made within it, below.
        config.max_feed_outage = Duration::from_millis(1500);
        config.feed_silence_limit = Duration::from_secs(1);
    })
    .await?;
    verifier.verify_token(&tokens.access_token).await?;

    let mut settings = app.settings.clone();
    settings.listen_addr = app.addr;
    let database = app.database.clone();
    let mut app = app;
    let stopped = tokio::time::Instant::now();
    app.stop().await;
    // Within the allowed outage the last known state still answers...
    verifier.verify_token(&tokens.access_token).await?;
    // ...beyond it, nothing is accepted, because a revocation might have been missed.
    loop {
        match verifier.verify_token(&tokens.access_token).await {
            Ok(_) => {
                assert!(stopped.elapsed() < Duration::from_secs(10), "never closed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(VerifyError::Unavailable) => break,
            Err(error) => return Err(format!("{error:?}").into()),
        }
    }
    assert!(
        stopped.elapsed() >= Duration::from_millis(1500),
        "closed before the allowed outage was over: {:?}",
        stopped.elapsed()
    );

    let _app = TestApp::start(database, settings).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !verifier.feed_is_live() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the verifier did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    verifier.verify_token(&tokens.access_token).await?;
    Ok(())
}

async fn a_local_verifier_accepts_tokens_signed_with_a_rotated_in_key(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("rotated");
    let (_, before) = app.user_with_tokens(&email).await?;
    let verifier = local_verifier(&app, "api", |_| {}).await?;
    let admin = auth_service::app::Components::open(&app.settings).await?;
    let new_kid = admin
        .keys
        .rotate(
            auth_service::domain::Timestamp::now(),
            Duration::ZERO,
            Duration::from_secs(900),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tokens = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
        if jsonwebtoken::decode_header(&tokens.access_token)?
            .kid
            .as_deref()
            == Some(new_kid.as_str())
        {
            verifier.verify_token(&tokens.access_token).await?;
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never signed with the new key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    verifier.verify_token(&before.access_token).await?;
    Ok(())
}
