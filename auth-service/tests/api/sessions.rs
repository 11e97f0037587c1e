use auth_api::v1::{self as pb, CredentialKind};
use tonic::Code;

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, session_token,
    token_pair, unique_email, with_bearer,
};

on_both_backends!(
    list_sessions_shows_the_callers_live_sessions_and_marks_the_current_one,
    a_user_may_revoke_their_own_session_but_not_another_users,
    an_admin_may_list_and_revoke_anyones_sessions,
    revoke_all_sessions_can_keep_the_current_one,
    session_management_without_a_valid_bearer_token_is_unauthenticated,
);

async fn list_sessions_shows_the_callers_live_sessions_and_marks_the_current_one(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("list");
    let (first_login, first) = app.user_with_tokens(&email).await?;
    let second_login = app.login(&email, CredentialKind::Session).await?;
    let ended = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: ended.access_token,
        })
        .await?;
    // Only a management session's credential lists them; the apps' sessions are listed with it.
    let manager_login = app.login_management(&email, CredentialKind::Tokens).await?;
    let manager = token_pair(&manager_login)?;

    let sessions = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &manager.access_token,
            pb::ListSessionsRequest::default(),
        )?)
        .await?
        .into_inner()
        .sessions;
    let ids: Vec<&str> = sessions.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            manager_login.session_id.as_str(),
            second_login.session_id.as_str(),
            first_login.session_id.as_str()
        ],
        "newest first, ended ones left out"
    );
    let current: Vec<bool> = sessions.iter().map(|s| s.current).collect();
    assert_eq!(current, [true, false, false]);
    assert_eq!(sessions[0].kind(), CredentialKind::Tokens);
    assert_eq!(sessions[1].kind(), CredentialKind::Session);
    assert_eq!(sessions[2].kind(), CredentialKind::Tokens);
    for session in &sessions {
        assert!(
            session.user_agent.starts_with("api-tests/1.0"),
            "{:?}",
            session.user_agent
        );
        assert!(session.peer_address.starts_with("127.0.0.1:"));
        assert_eq!(session.user_id, first_login.user_id);
        assert!(
            session.created_at.is_some()
                && session.last_seen_at.is_some()
                && session.expires_at.is_some()
        );
    }

    // A management session token identifies the caller too.
    let by_session_login = app
        .login_management(&email, CredentialKind::Session)
        .await?;
    let by_session = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &session_token(&by_session_login)?,
            pb::ListSessionsRequest::default(),
        )?)
        .await?
        .into_inner()
        .sessions;
    assert!(
        by_session
            .iter()
            .any(|s| s.current && s.session_id == by_session_login.session_id)
    );
    assert_eq!(by_session.iter().filter(|s| s.current).count(), 1);

    // The credentials the apps hold list nothing, however live their session.
    for app_credential in [first.access_token.clone(), session_token(&second_login)?] {
        let refused = app
            .auth
            .clone()
            .list_sessions(with_bearer(
                &app_credential,
                pb::ListSessionsRequest::default(),
            )?)
            .await;
        assert_error(
            refused,
            Code::PermissionDenied,
            "MANAGEMENT_CREDENTIAL_REQUIRED",
        );
    }
    Ok(())
}

async fn a_user_may_revoke_their_own_session_but_not_another_users(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (alice_login, alice) = app.user_with_tokens(&unique_email("alice")).await?;
    let mallory_email = unique_email("mallory");
    let (mallory_login, mallory) = app.user_with_tokens(&mallory_email).await?;
    let mallory_manager = app.manager_token(&mallory_email).await?;

    let revoke = |caller: &str, session_id: &str| {
        let request = with_bearer(
            caller,
            pb::RevokeSessionRequest {
                session_id: session_id.into(),
            },
        );
        let mut client = app.auth.clone();
        async move { client.revoke_session(request.expect("request")).await }
    };
    assert_error(
        revoke(&mallory_manager, &alice_login.session_id).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    app.verify(&alice.access_token).await?;
    let listing = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &mallory_manager,
            pb::ListSessionsRequest {
                user_id: alice_login.user_id.clone(),
                ..Default::default()
            },
        )?)
        .await;
    assert_error(listing, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_error(
        revoke(&mallory_manager, "no-such-session").await,
        Code::NotFound,
        "SESSION_NOT_FOUND",
    );
    // Her app session's token cannot end even its own session this way (Logout can).
    assert_error(
        revoke(&mallory.access_token, &mallory_login.session_id).await,
        Code::PermissionDenied,
        "MANAGEMENT_CREDENTIAL_REQUIRED",
    );
    app.verify(&mallory.access_token).await?;

    revoke(&mallory_manager, &mallory_login.session_id).await?;
    assert_error(
        app.verify(&mallory.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn an_admin_may_list_and_revoke_anyones_sessions(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin_email = unique_email("admin");
    let components = auth_service::app::Components::open(&app.settings).await?;
    components
        .core
        .create_user(
            &admin_email,
            PASSWORD.into(),
            &["admin".into()],
            auth_service::domain::Timestamp::now(),
        )
        .await?;
    let admin_app = token_pair(&app.login(&admin_email, CredentialKind::Tokens).await?)?;
    let verified = app.verify(&admin_app.access_token).await?;
    assert_eq!(verified.principal.expect("principal").roles, ["admin"]);
    let admin = token_pair(
        &app.login_management(&admin_email, CredentialKind::Tokens)
            .await?,
    )?;

    let (user_login, user) = app.user_with_tokens(&unique_email("user")).await?;
    // The admin role does not make an app credential a management one.
    let refused = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &admin_app.access_token,
            pb::ListSessionsRequest {
                user_id: user_login.user_id.clone(),
                ..Default::default()
            },
        )?)
        .await;
    assert_error(
        refused,
        Code::PermissionDenied,
        "MANAGEMENT_CREDENTIAL_REQUIRED",
    );
    let sessions = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &admin.access_token,
            pb::ListSessionsRequest {
                user_id: user_login.user_id.clone(),
                ..Default::default()
            },
        )?)
        .await?
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 1);
    assert!(!sessions[0].current);

    app.auth
        .clone()
        .revoke_session(with_bearer(
            &admin.access_token,
            pb::RevokeSessionRequest {
                session_id: user_login.session_id,
            },
        )?)
        .await?;
    assert_error(
        app.verify(&user.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );

    let other = app.user_with_tokens(&unique_email("other")).await?;
    let revoked = app
        .auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &admin.access_token,
            pb::RevokeAllSessionsRequest {
                user_id: other.0.user_id,
                keep_current: true,
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(revoked.revoked_count, 1);
    assert_error(
        app.verify(&other.1.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // The admin's own sessions are untouched.
    app.verify(&admin_app.access_token).await?;
    assert_eq!(app.list_sessions(&admin.access_token).await?.len(), 2);
    Ok(())
}

async fn revoke_all_sessions_can_keep_the_current_one(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("all");
    let (_, first) = app.user_with_tokens(&email).await?;
    let other = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    let third = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let current_login = app.login_management(&email, CredentialKind::Tokens).await?;
    let current = token_pair(&current_login)?;

    let revoked = app
        .auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &current.access_token,
            pb::RevokeAllSessionsRequest {
                user_id: String::new(),
                keep_current: true,
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(revoked.revoked_count, 3);
    for token in [&first.access_token, &other.access_token, &third] {
        assert_error(
            app.verify(token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    // Only the session the call was made with is left, and it still works.
    let left = app.list_sessions(&current.access_token).await?;
    assert_eq!(left.len(), 1);
    assert!(left[0].current && left[0].session_id == current_login.session_id);

    app.auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &current.access_token,
            pb::RevokeAllSessionsRequest::default(),
        )?)
        .await?;
    assert_error(
        app.list_sessions(&current.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn session_management_without_a_valid_bearer_token_is_unauthenticated(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("anon")).await?;
    let missing = app
        .auth
        .clone()
        .list_sessions(pb::ListSessionsRequest::default())
        .await;
    assert_error(missing, Code::Unauthenticated, "CREDENTIAL_MISSING");
    let forged = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            "not.a.token",
            pb::ListSessionsRequest::default(),
        )?)
        .await;
    assert_error(forged, Code::Unauthenticated, "TOKEN_INVALID");
    // A refresh token is not a bearer credential.
    let refresh = app
        .auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &tokens.refresh_token,
            pb::RevokeAllSessionsRequest::default(),
        )?)
        .await;
    assert_error(refresh, Code::Unauthenticated, "TOKEN_INVALID");
    let change = app
        .auth
        .clone()
        .change_password(pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "another password".into(),
        })
        .await;
    assert_error(change, Code::Unauthenticated, "CREDENTIAL_MISSING");
    app.verify(&tokens.access_token).await?;
    Ok(())
}
