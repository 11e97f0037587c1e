//! Session and refresh token attacks (RFC 9700 s4.14, ASVS 5.0 chapter 7): a stolen refresh token
//! replayed inside and outside the grace window, generations back, across two replicas; sessions
//! used past their idle or absolute expiry; credentials used after revocation or a password
//! change; forged or foreign credentials used to end someone else's sessions.

use std::time::Duration;

use auth_api::v1::{self as pb, CredentialKind};
use tonic::Code;

use super::{live_session_ids, other_session_ids, stored_session_count};
use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, session_token,
    token_pair, unique_email, with_bearer,
};

on_both_backends!(
    a_refresh_token_replayed_outside_the_grace_window_revokes_the_session,
    a_thief_replaying_inside_the_grace_window_is_caught_by_the_victims_next_refresh,
    a_refresh_token_two_generations_back_inside_the_grace_window_revokes_the_session,
    refresh_token_three_generations_back_revokes_the_session,
    a_refresh_token_replayed_on_another_replica_revokes_the_session,
    an_unknown_refresh_token_is_refused_and_revokes_nothing,
    a_refresh_token_after_logout_is_refused,
    a_session_token_left_idle_past_its_timeout_is_refused,
    a_busy_session_token_still_ends_at_its_absolute_lifetime,
    a_refresh_after_the_absolute_session_lifetime_is_refused,
    revoking_one_session_kills_its_tokens_and_spares_the_others,
    revoke_all_kills_access_refresh_and_session_tokens_at_once,
    a_password_change_ends_the_sessions_a_thief_holds,
    revoking_all_sessions_of_another_user_is_denied,
    logout_with_a_forged_token_ends_nothing,
);

async fn a_refresh_token_replayed_outside_the_grace_window_revokes_the_session(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.refresh_reuse_grace = Duration::from_millis(300)
    })
    .await?;
    let (_, stolen) = app.user_with_tokens(&unique_email("replay")).await?;
    let victims = app.refresh(&stolen.refresh_token).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_error(
        app.refresh(&stolen.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    for result in [
        app.verify(&victims.access_token).await.map(|_| ()),
        app.refresh(&victims.refresh_token).await.map(|_| ()),
    ] {
        assert_error(result, Code::Unauthenticated, "SESSION_REVOKED");
    }
    Ok(())
}

async fn a_thief_replaying_inside_the_grace_window_is_caught_by_the_victims_next_refresh(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?; // default grace: 10 s
    let (_, stolen) = app.user_with_tokens(&unique_email("grace-thief")).await?;
    let victims = app.refresh(&stolen.refresh_token).await?;
    // Inside the window the replay looks like a lost response: it is answered...
    let thiefs = app.refresh(&stolen.refresh_token).await?;
    // ...at the price of the victim's pair, whose next use is reuse and ends the session.
    assert_error(
        app.refresh(&victims.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    assert_error(
        app.verify(&thiefs.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&thiefs.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn a_refresh_token_two_generations_back_inside_the_grace_window_revokes_the_session(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?; // default grace: 10 s
    let (_, first) = app.user_with_tokens(&unique_email("two-back")).await?;
    let second = app.refresh(&first.refresh_token).await?;
    let third = app.refresh(&second.refresh_token).await?;
    // Only the immediate predecessor is graced.
    assert_error(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    assert_error(
        app.verify(&third.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn refresh_token_three_generations_back_revokes_the_session(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (login, first) = app.user_with_tokens(&unique_email("three-back")).await?;
    let mut latest = first.clone();
    for _ in 0..3 {
        latest = app.refresh(&latest.refresh_token).await?;
    }
    assert_error(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    assert_error(
        app.refresh(&latest.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_eq!(stored_session_count(&app, &login.user_id).await?, 0);
    Ok(())
}

async fn a_refresh_token_replayed_on_another_replica_revokes_the_session(
    backend: Backend,
) -> TestResult {
    let first_replica = TestApp::spawn_with(&backend, |settings| {
        settings.refresh_reuse_grace = Duration::ZERO
    })
    .await?;
    let second_replica = TestApp::start(
        first_replica.database.clone(),
        first_replica.settings.clone(),
    )
    .await?;
    let (_, stolen) = first_replica
        .user_with_tokens(&unique_email("replicas"))
        .await?;
    let victims = first_replica.refresh(&stolen.refresh_token).await?;
    assert_error(
        second_replica.refresh(&stolen.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    assert_error(
        first_replica.verify(&victims.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        first_replica.refresh(&victims.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn an_unknown_refresh_token_is_refused_and_revokes_nothing(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("guess");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    let manager = app.manager_token(&email).await?;
    let guessed = auth_service::domain::opaque_token::OpaqueToken::generate()?.text;
    for token in [guessed.as_str(), &"A".repeat(43), &"_".repeat(43)] {
        assert_error(
            app.refresh(token).await,
            Code::Unauthenticated,
            "TOKEN_INVALID",
        );
    }
    assert_eq!(other_session_ids(&app, &manager).await?, [login.session_id]);
    app.refresh(&tokens.refresh_token).await?;
    Ok(())
}

async fn a_refresh_token_after_logout_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("logout")).await?;
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.access_token.clone(),
        })
        .await?;
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // The refused refresh minted nothing that works.
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn a_session_token_left_idle_past_its_timeout_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_idle_timeout = Duration::from_secs(1)
    })
    .await?;
    let email = unique_email("idle");
    app.register(&email).await?;
    let token = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    app.verify(&token).await?;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for _ in 0..2 {
        // The refused attempt does not count as activity: the session stays ended.
        assert_error(
            app.verify(&token).await,
            Code::Unauthenticated,
            "SESSION_EXPIRED",
        );
    }
    Ok(())
}

async fn a_busy_session_token_still_ends_at_its_absolute_lifetime(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_max_lifetime = Duration::from_secs(2)
    })
    .await?;
    let email = unique_email("absolute");
    app.register(&email).await?;
    let token = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2300);
    while tokio::time::Instant::now() < deadline {
        let _ = app.verify(&token).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_error(
        app.verify(&token).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
    );
    Ok(())
}

async fn a_refresh_after_the_absolute_session_lifetime_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_max_lifetime = Duration::from_secs(3)
    })
    .await?;
    let (_, first) = app.user_with_tokens(&unique_email("lifetime")).await?;
    let mut latest = app.refresh(&first.refresh_token).await?;
    // Two seconds of margin before the lifetime ends, one after it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    latest = app.refresh(&latest.refresh_token).await?;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_error(
        app.refresh(&latest.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
    );
    Ok(())
}

async fn revoking_one_session_kills_its_tokens_and_spares_the_others(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("one");
    let (stolen_login, stolen) = app.user_with_tokens(&email).await?;
    let kept = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    let manager = app.manager_token(&email).await?;
    let revoke = |bearer: &str| {
        let request = with_bearer(
            bearer,
            pb::RevokeSessionRequest {
                session_id: stolen_login.session_id.clone(),
            },
        );
        let mut client = app.auth.clone();
        async move { client.revoke_session(request.expect("request")).await }
    };
    // The other app session's token is no management credential: nothing ends.
    assert_error(
        revoke(&kept.access_token).await,
        Code::PermissionDenied,
        "MANAGEMENT_CREDENTIAL_REQUIRED",
    );
    app.verify(&stolen.access_token).await?;
    revoke(&manager).await?;
    assert_error(
        app.verify(&stolen.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&stolen.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.verify(&kept.access_token).await?;
    app.refresh(&kept.refresh_token).await?;
    let live = other_session_ids(&app, &manager).await?;
    assert!(!live.contains(&stolen_login.session_id));
    assert_eq!(live.len(), 1);
    Ok(())
}

async fn revoke_all_kills_access_refresh_and_session_tokens_at_once(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("all");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let manager = app.manager_token(&email).await?;
    let revoked = app
        .auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &manager,
            pb::RevokeAllSessionsRequest::default(),
        )?)
        .await?
        .into_inner();
    assert_eq!(revoked.revoked_count, 3);
    for result in [
        app.verify(&tokens.access_token).await.map(|_| ()),
        app.refresh(&tokens.refresh_token).await.map(|_| ()),
        app.verify(&session).await.map(|_| ()),
        live_session_ids(&app, &manager).await.map(|_| ()),
    ] {
        assert_error(result, Code::Unauthenticated, "SESSION_REVOKED");
    }
    assert_eq!(stored_session_count(&app, &login.user_id).await?, 0);
    Ok(())
}

async fn a_password_change_ends_the_sessions_a_thief_holds(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("thief");
    let (_, thiefs) = app.user_with_tokens(&email).await?;
    let thiefs_session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let owners_login = app.login_management(&email, CredentialKind::Tokens).await?;
    let owners = token_pair(&owners_login)?;
    app.auth
        .clone()
        .change_password(with_bearer(
            &owners.access_token,
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "a fresh passphrase".into(),
            },
        )?)
        .await?;
    for result in [
        app.verify(&thiefs.access_token).await.map(|_| ()),
        app.refresh(&thiefs.refresh_token).await.map(|_| ()),
        app.verify(&thiefs_session).await.map(|_| ()),
    ] {
        assert_error(result, Code::Unauthenticated, "SESSION_REVOKED");
    }
    // The owner's session is the one left.
    assert_eq!(
        live_session_ids(&app, &owners.access_token).await?,
        [owners_login.session_id]
    );
    assert_error(
        app.login(&email, CredentialKind::Tokens).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    Ok(())
}

async fn revoking_all_sessions_of_another_user_is_denied(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let alice_email = unique_email("alice");
    let (alice_login, _) = app.user_with_tokens(&alice_email).await?;
    let alice = app.manager_token(&alice_email).await?;
    let mallory_email = unique_email("mallory");
    let (_, mallory) = app.user_with_tokens(&mallory_email).await?;
    let mallory_manager = app.manager_token(&mallory_email).await?;
    let attempt = app
        .auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &mallory_manager,
            pb::RevokeAllSessionsRequest {
                user_id: alice_login.user_id.clone(),
                keep_current: false,
            },
        )?)
        .await;
    assert_error(attempt, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_eq!(
        other_session_ids(&app, &alice).await?,
        [alice_login.session_id]
    );
    app.verify(&mallory.access_token).await?;
    Ok(())
}

async fn logout_with_a_forged_token_ends_nothing(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("victim");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    let manager = app.manager_token(&email).await?;
    // The victim's own header and claims, re-signed by a key the service never issued.
    let stranger = auth_service::engine::keys::generate_key(
        auth_service::domain::Timestamp::now(),
        auth_service::domain::Timestamp::now(),
    )?;
    let (signed_part, _) = tokens.access_token.rsplit_once('.').expect("a compact JWS");
    let key = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(
        stranger.private_pkcs8.as_deref().expect("a fresh key"),
    )?;
    let forged = {
        use base64::Engine;
        let signature = key.sign(signed_part.as_bytes());
        format!(
            "{signed_part}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    };
    for token in [forged.as_str(), &"B".repeat(43)] {
        let attempt = app
            .auth
            .clone()
            .logout(pb::LogoutRequest {
                token: token.to_owned(),
            })
            .await;
        assert_error(attempt, Code::Unauthenticated, "TOKEN_INVALID");
    }
    assert_eq!(other_session_ids(&app, &manager).await?, [login.session_id]);
    Ok(())
}
