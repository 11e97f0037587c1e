//! What each credential can do (SECURITY.md, "Credentials and what they can do"): a credential
//! that reaches an app or an upstream service (an app session's tokens, what the gateway
//! forwards, what ExchangeToken mints) cannot manage the account, cannot be exchanged again, and
//! a management session's credentials are refused by the apps.

use std::time::Duration;

use auth_api::v1::{self as pb, CredentialKind, admin_service_client::AdminServiceClient};
use tonic::{Code, Status};

use super::stored_session_count;
use crate::{
    ext_authz::{check, http_check},
    helpers::{
        Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, session_token,
        token_pair, unique_email, with_bearer,
    },
};

on_both_backends!(
    app_credentials_cannot_manage_the_account,
    management_credentials_are_refused_by_the_apps_and_manage_the_account,
    what_the_gateway_forwards_cannot_manage_or_be_exchanged,
    an_exchanged_token_cannot_be_exchanged_again_or_manage,
    exchange_is_denied_for_every_audience_by_default_and_never_mints_management_tokens,
    a_session_token_is_valid_only_for_the_services_own_audience,
    the_admin_service_wants_a_recent_login,
    a_login_racing_a_password_change_does_not_survive_it,
    a_clients_own_identity_headers_never_reach_the_upstream,
);

const MANAGEMENT_REQUIRED: (Code, &str) =
    (Code::PermissionDenied, "MANAGEMENT_CREDENTIAL_REQUIRED");

async fn exchange(app: &TestApp, subject: &str, audience: &str) -> Result<String, Status> {
    Ok(app
        .auth
        .clone()
        .exchange_token(pb::ExchangeTokenRequest {
            subject_token: subject.into(),
            audience: audience.into(),
        })
        .await?
        .into_inner()
        .access_token)
}

/// Every management RPC refuses `bearer` with `expected`, and no session of `user_id` ended.
async fn cannot_manage(
    app: &TestApp,
    bearer: &str,
    user_id: &str,
    expected: (Code, &str),
) -> TestResult {
    let before = stored_session_count(app, user_id).await?;
    let (code, reason) = expected;
    assert_error(app.list_sessions(bearer).await, code, reason);
    let revoke_all = with_bearer(bearer, pb::RevokeAllSessionsRequest::default())?;
    assert_error(
        app.auth.clone().revoke_all_sessions(revoke_all).await,
        code,
        reason,
    );
    let change = with_bearer(
        bearer,
        pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "an entirely new passphrase".into(),
        },
    )?;
    assert_error(app.auth.clone().change_password(change).await, code, reason);
    let get_user = with_bearer(
        bearer,
        pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::UserId(user_id.into())),
        },
    )?;
    assert_error(
        AdminServiceClient::new(app.channel.clone())
            .get_user(get_user)
            .await,
        code,
        reason,
    );
    assert_eq!(stored_session_count(app, user_id).await?, before);
    Ok(())
}

async fn app_credentials_cannot_manage_the_account(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("appcred");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    cannot_manage(
        &app,
        &tokens.access_token,
        &login.user_id,
        MANAGEMENT_REQUIRED,
    )
    .await?;
    cannot_manage(&app, &session, &login.user_id, MANAGEMENT_REQUIRED).await?;
    // Both still work where they belong.
    app.verify(&tokens.access_token).await?;
    app.verify(&session).await?;
    // The old password still logs in: no guess of ChangePassword changed it.
    app.login(&email, CredentialKind::Tokens).await?;
    Ok(())
}

async fn management_credentials_are_refused_by_the_apps_and_manage_the_account(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("mgmt");
    app.register(&email).await?;
    let managing = app.login_management(&email, CredentialKind::Tokens).await?;
    let access = token_pair(&managing)?.access_token;
    let session = app.manager_token(&email).await?;
    for credential in [&access, &session] {
        assert_error(
            app.verify(credential).await,
            Code::Unauthenticated,
            "TOKEN_INVALID",
        );
        // Not even when the caller names the management audience.
        let named = app
            .auth
            .clone()
            .verify(pb::VerifyRequest {
                token: credential.to_string(),
                audience: "auth-management".into(),
            })
            .await;
        assert_error(named, Code::Unauthenticated, "TOKEN_INVALID");
        let bearer = format!("Bearer {credential}");
        let denied = check(&app, http_check("GET", &[("authorization", &bearer)])).await?;
        assert_eq!(
            denied.status.map(|status| status.code),
            Some(Code::Unauthenticated as i32),
            "the gateway let a management credential through"
        );
        let listed = app.list_sessions(credential).await?;
        assert_eq!(listed.len(), 2, "both management sessions are listed");
    }
    // The management session's access token names the management audience and its login.
    let claims = crate::ext_authz::claims_of(&access);
    assert_eq!(claims["aud"], "auth-management");
    assert!(claims["auth_time"].as_i64().is_some_and(|at| at > 0));
    Ok(())
}

async fn what_the_gateway_forwards_cannot_manage_or_be_exchanged(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.exchange_audiences = vec!["payments".into()];
    })
    .await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("gwfwd")).await?;
    let bearer = format!("Bearer {}", tokens.access_token);
    let response = check(&app, http_check("GET", &[("authorization", &bearer)])).await?;
    let forwarded = crate::ext_authz::allowed(&response)
        .remove("authorization")
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned))
        .ok_or("no authorization header for the upstream")?;
    assert_ne!(
        forwarded, tokens.access_token,
        "the client's own token went upstream"
    );
    // Minted once per client token (for half its life), not once per request.
    let again = check(&app, http_check("GET", &[("authorization", &bearer)])).await?;
    assert_eq!(
        crate::ext_authz::allowed(&again).get("authorization"),
        Some(&format!("Bearer {forwarded}"))
    );
    let principal = app.verify(&forwarded).await?.principal.ok_or("principal")?;
    assert_eq!(principal.session_id, login.session_id);
    cannot_manage(&app, &forwarded, &login.user_id, MANAGEMENT_REQUIRED).await?;
    // One hop only: the forwarded token is the gateway's to mint and an upstream's to read,
    // never to turn into another audience's; the client's own token still may.
    assert_error(
        exchange(&app, &forwarded, "payments").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    exchange(&app, &tokens.access_token, "payments").await?;
    // A reused forwarded token never outlives the session: the client's is checked first.
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.access_token.clone(),
        })
        .await?;
    let after = check(&app, http_check("GET", &[("authorization", &bearer)])).await?;
    assert_eq!(
        after.status.map(|status| status.code),
        Some(Code::Unauthenticated as i32)
    );
    Ok(())
}

async fn an_exchanged_token_cannot_be_exchanged_again_or_manage(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.exchange_audiences = vec!["payments".into(), "ledger".into()];
    })
    .await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("exagain")).await?;
    let payments = exchange(&app, &tokens.access_token, "payments").await?;
    assert_error(
        exchange(&app, &payments, "ledger").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    assert_error(
        exchange(&app, &payments, "payments").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    cannot_manage(&app, &payments, &login.user_id, MANAGEMENT_REQUIRED).await?;
    Ok(())
}

async fn exchange_is_denied_for_every_audience_by_default_and_never_mints_management_tokens(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("exdeny");
    let (_, tokens) = app.user_with_tokens(&email).await?;
    let manager = app.manager_token(&email).await?;
    for audience in ["payments", "api", "auth-management"] {
        for subject in [&tokens.access_token, &manager] {
            assert_error(
                exchange(&app, subject, audience).await,
                Code::PermissionDenied,
                "AUDIENCE_NOT_ALLOWED",
            );
        }
    }
    // Listing the management audience is refused at start-up.
    let mut settings = app.settings.clone();
    settings.exchange_audiences = vec!["auth-management".into()];
    let refused = auth_service::app::Application::build(settings).await;
    let message = refused
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(message.contains("AUTH_EXCHANGE_AUDIENCES"), "{message}");
    Ok(())
}

async fn a_session_token_is_valid_only_for_the_services_own_audience(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("sessaud");
    app.register(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    for (audience, valid) in [
        ("", true),
        ("api", true),
        ("payments", false),
        ("auth-management", false),
    ] {
        let verified = app
            .auth
            .clone()
            .verify(pb::VerifyRequest {
                token: session.clone(),
                audience: audience.into(),
            })
            .await;
        if valid {
            verified?;
        } else {
            assert_error(verified, Code::Unauthenticated, "TOKEN_INVALID");
        }
    }
    Ok(())
}

async fn the_admin_service_wants_a_recent_login(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.admin_max_auth_age = Duration::from_secs(1);
    })
    .await?;
    let admin = crate::admin::admin(&app).await?;
    let get_self = |token: &str| {
        with_bearer(
            token,
            pb::GetUserRequest {
                lookup: Some(pb::get_user_request::Lookup::UserId(admin.user_id.clone())),
            },
        )
    };
    let client = AdminServiceClient::new(app.channel.clone());
    client
        .clone()
        .get_user(get_self(&admin.session_token)?)
        .await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_error(
        client
            .clone()
            .get_user(get_self(&admin.session_token)?)
            .await,
        Code::Unauthenticated,
        "REAUTHENTICATION_REQUIRED",
    );
    // The stale session still manages the admin's own sessions; a new login administers again.
    app.list_sessions(&admin.session_token).await?;
    let fresh = app.manager_token(&admin.email).await?;
    client.clone().get_user(get_self(&fresh)?).await?;
    Ok(())
}

/// Logins with the old password race a password change; once both are done, none of their
/// sessions may be live: either the login saw the new hash (refused) or its session ended.
async fn a_login_racing_a_password_change_does_not_survive_it(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("pwrace");
    app.register(&email).await?;
    let manager = app.manager_token(&email).await?;
    // With the manager, fewer than the per-user cap of 10 sessions: none is evicted.
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let auth = app.auth.clone();
            let email = email.clone();
            tokio::spawn(async move {
                auth.clone()
                    .login(pb::LoginRequest {
                        email,
                        password: PASSWORD.into(),
                        kind: CredentialKind::Session.into(),
                        management: false,
                    })
                    .await
                    .map(|response| response.into_inner())
            })
        })
        .collect();
    let change = with_bearer(
        &manager,
        pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "a different passphrase now".into(),
        },
    )?;
    app.auth.clone().change_password(change).await?;
    for login in logins {
        let Ok(login) = login.await? else { continue };
        let token = session_token(&login)?;
        assert_error(
            app.verify(&token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    // The changer's own session survives, and the old password no longer logs in.
    app.list_sessions(&manager).await?;
    assert_error(
        app.login(&email, CredentialKind::Session).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    Ok(())
}

/// `x-user-*` headers are the gateway's word to the upstream: whatever a client sends under
/// those names is replaced (`x-user-id`, `x-user-roles`) or removed (any other).
async fn a_clients_own_identity_headers_never_reach_the_upstream(backend: Backend) -> TestResult {
    use auth_api::envoy::service::auth::v3::check_response::HttpResponse;

    let app = TestApp::spawn(&backend).await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("xuser")).await?;
    let bearer = format!("Bearer {}", tokens.access_token);
    let response = check(
        &app,
        http_check(
            "GET",
            &[
                ("authorization", &bearer),
                ("x-user-id", "someone-else"),
                ("x-user-roles", "admin"),
                ("x-user-email", "admin@example.com"),
                ("X-User-Admin", "true"),
            ],
        ),
    )
    .await?;
    let set = crate::ext_authz::allowed(&response);
    assert_eq!(set.get("x-user-id"), Some(&login.user_id));
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        return Err("not allowed".into());
    };
    for forged in ["x-user-roles", "x-user-email", "x-user-admin"] {
        assert!(
            ok.headers_to_remove.iter().any(|removed| removed == forged),
            "{forged} would reach the upstream: {:?}",
            ok.headers_to_remove
        );
    }
    Ok(())
}
