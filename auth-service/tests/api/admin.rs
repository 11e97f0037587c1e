//! AdminService: accounts, roles, suspension, anyone's sessions and key rotation, for callers
//! with the `admin` role only.

use std::time::Duration;

use auth_api::{
    VerifyError,
    v1::{
        self as pb, CredentialKind, GetJwksRequest, admin_service_client::AdminServiceClient,
        get_user_request::Lookup,
    },
};
use auth_service::domain::Timestamp;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::{Code, Status, transport::Channel};

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, local_verifier, on_both_backends,
    session_token, token_pair, unique_email, wait_until_rejected, with_bearer,
};

on_both_backends!(
    an_admin_creates_a_user_whose_tokens_carry_the_roles,
    new_roles_are_seen_by_verify_at_once,
    a_suspension_ends_every_session_and_refuses_login_until_reactivation,
    a_session_left_live_by_an_interrupted_suspension_cannot_refresh,
    no_session_survives_a_suspension_that_races_with_logins,
    an_admin_lists_and_revokes_a_users_sessions,
    rotating_the_key_publishes_a_new_kid_in_the_jwks,
    every_admin_rpc_refuses_a_caller_without_the_admin_role,
);

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An account with the `admin` role (made as `auth-service user create --role admin` does) and
/// the credentials of two management sessions of it: only those may call AdminService.
pub struct Admin {
    pub user_id: String,
    pub email: String,
    pub access_token: String,
    pub session_token: String,
}

pub async fn admin(app: &TestApp) -> Result<Admin, BoxError> {
    let email = unique_email("admin");
    let components = auth_service::app::Components::open(&app.settings).await?;
    let user_id = components
        .core
        .create_user(&email, PASSWORD.into(), &["admin".into()], Timestamp::now())
        .await?;
    let tokens = token_pair(&app.login_management(&email, CredentialKind::Tokens).await?)?;
    let session = app.manager_token(&email).await?;
    Ok(Admin {
        user_id,
        email,
        access_token: tokens.access_token,
        session_token: session,
    })
}

pub fn client(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(app.channel.clone())
}

async fn get_user(app: &TestApp, token: &str, lookup: Lookup) -> Result<pb::User, BoxError> {
    let request = with_bearer(
        token,
        pb::GetUserRequest {
            lookup: Some(lookup),
        },
    )?;
    Ok(client(app)
        .get_user(request)
        .await?
        .into_inner()
        .user
        .ok_or("no user")?)
}

async fn suspend(app: &TestApp, token: &str, user_id: &str) -> Result<u32, Status> {
    let request = with_bearer(
        token,
        pb::SuspendUserRequest {
            user_id: user_id.into(),
        },
    )
    .map_err(|error| Status::internal(error.to_string()))?;
    Ok(client(app)
        .suspend_user(request)
        .await?
        .into_inner()
        .revoked_count)
}

pub(crate) async fn login_with(
    app: &TestApp,
    email: &str,
    password: &str,
) -> Result<pb::LoginResponse, Status> {
    Ok(app
        .auth
        .clone()
        .login(pb::LoginRequest {
            email: email.into(),
            password: password.into(),
            kind: CredentialKind::Tokens.into(),
            management: false,
        })
        .await?
        .into_inner())
}

/// The claims of a JWT, read without checking anything (the test only looks at them).
fn claims(token: &str) -> Result<serde_json::Value, BoxError> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

async fn an_admin_creates_a_user_whose_tokens_carry_the_roles(backend: Backend) -> TestResult {
    // Self-registration is off: only an administrator creates accounts.
    let app = TestApp::spawn_with(&backend, |settings| settings.allow_registration = false).await?;
    let admin = admin(&app).await?;
    let email = unique_email("created");
    let created = client(&app)
        .create_user(with_bearer(
            &admin.access_token,
            pb::CreateUserRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                roles: vec!["billing".into(), "support".into()],
            },
        )?)
        .await?
        .into_inner();

    let tokens = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    assert_eq!(
        claims(&tokens.access_token)?["roles"],
        serde_json::json!(["billing", "support"])
    );
    let verified = app.verify(&tokens.access_token).await?;
    let principal = verified.principal.ok_or("principal")?;
    assert_eq!(principal.user_id, created.user_id);
    assert_eq!(principal.roles, ["billing", "support"]);

    let by_email = get_user(
        &app,
        &admin.session_token,
        Lookup::Email(email.to_uppercase()),
    )
    .await?;
    let by_id = get_user(
        &app,
        &admin.access_token,
        Lookup::UserId(created.user_id.clone()),
    )
    .await?;
    assert_eq!(by_email, by_id);
    assert_eq!(by_id.email, email);
    assert_eq!(by_id.roles, ["billing", "support"]);
    assert!(!by_id.suspended && by_id.suspended_at.is_none() && by_id.created_at.is_some());

    let again = client(&app)
        .create_user(with_bearer(
            &admin.access_token,
            pb::CreateUserRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                roles: vec![],
            },
        )?)
        .await;
    assert_error(again, Code::AlreadyExists, "EMAIL_TAKEN");
    let weak = client(&app)
        .create_user(with_bearer(
            &admin.access_token,
            pb::CreateUserRequest {
                email: unique_email("weak"),
                password: "short".into(),
                roles: vec![],
            },
        )?)
        .await;
    assert_error(weak, Code::InvalidArgument, "WEAK_PASSWORD");
    let unknown = client(&app)
        .get_user(with_bearer(
            &admin.access_token,
            pb::GetUserRequest {
                lookup: Some(Lookup::Email("nobody@example.com".into())),
            },
        )?)
        .await;
    assert_error(unknown, Code::NotFound, "USER_NOT_FOUND");
    let neither = client(&app)
        .get_user(with_bearer(
            &admin.access_token,
            pb::GetUserRequest { lookup: None },
        )?)
        .await;
    assert_error(neither, Code::InvalidArgument, "INVALID_ARGUMENT");
    Ok(())
}

async fn new_roles_are_seen_by_verify_at_once(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let email = unique_email("roles");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    // Seen once before the change, as a busy session would be (and remembered by the replica).
    for token in [&tokens.access_token, &session] {
        app.verify(token).await?;
    }

    let updated = client(&app)
        .set_roles(with_bearer(
            &admin.access_token,
            pb::SetRolesRequest {
                user_id: login.user_id.clone(),
                roles: vec!["auditor".into(), "billing".into(), "auditor".into()],
            },
        )?)
        .await?
        .into_inner()
        .user
        .ok_or("user")?;
    assert_eq!(updated.roles, ["auditor", "billing"], "duplicates dropped");
    for token in [&tokens.access_token, &session] {
        let principal = app.verify(token).await?.principal.ok_or("principal")?;
        assert_eq!(principal.roles, ["auditor", "billing"]);
    }
    // The access token's own claim is what it was signed with; a refresh brings the new roles.
    assert_eq!(
        claims(&tokens.access_token)?["roles"],
        serde_json::json!([])
    );
    let refreshed = app.refresh(&tokens.refresh_token).await?;
    assert_eq!(
        claims(&refreshed.access_token)?["roles"],
        serde_json::json!(["auditor", "billing"])
    );

    let cleared = client(&app)
        .set_roles(with_bearer(
            &admin.access_token,
            pb::SetRolesRequest {
                user_id: login.user_id.clone(),
                roles: vec![],
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(cleared.user.ok_or("user")?.roles, Vec::<String>::new());
    let principal = app.verify(&session).await?.principal.ok_or("principal")?;
    assert!(principal.roles.is_empty());

    let spaced = client(&app)
        .set_roles(with_bearer(
            &admin.access_token,
            pb::SetRolesRequest {
                user_id: login.user_id.clone(),
                roles: vec!["two words".into()],
            },
        )?)
        .await;
    assert_error(spaced, Code::InvalidArgument, "INVALID_ARGUMENT");
    let unknown = client(&app)
        .set_roles(with_bearer(
            &admin.access_token,
            pb::SetRolesRequest {
                user_id: "no-such-user".into(),
                roles: vec!["admin".into()],
            },
        )?)
        .await;
    assert_error(unknown, Code::NotFound, "USER_NOT_FOUND");
    Ok(())
}

async fn a_suspension_ends_every_session_and_refuses_login_until_reactivation(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let email = unique_email("suspended");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let verifier = local_verifier(&app, "api", |_| {}).await?;
    verifier.verify_token(&tokens.access_token).await?;

    let revoked = suspend(&app, &admin.access_token, &login.user_id).await?;
    assert_eq!(revoked, 2);

    // Every credential dies at once: Verify, Refresh, and the revocation feed.
    for token in [&tokens.access_token, &session] {
        assert_error(
            app.verify(token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let error =
        wait_until_rejected(&verifier, &tokens.access_token, Duration::from_secs(5)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");

    // Only the right password learns of the suspension.
    assert_error(
        login_with(&app, &email, PASSWORD).await,
        Code::Unauthenticated,
        "ACCOUNT_SUSPENDED",
    );
    assert_error(
        login_with(&app, &email, "a wrong password").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    let user = get_user(
        &app,
        &admin.access_token,
        Lookup::UserId(login.user_id.clone()),
    )
    .await?;
    assert!(user.suspended && user.suspended_at.is_some());
    // Suspending again is harmless and keeps the first instant.
    assert_eq!(suspend(&app, &admin.access_token, &login.user_id).await?, 0);
    let again = get_user(
        &app,
        &admin.access_token,
        Lookup::UserId(login.user_id.clone()),
    )
    .await?;
    assert_eq!(again.suspended_at, user.suspended_at);
    // An administrator cannot lock themselves out.
    assert_error(
        suspend(&app, &admin.access_token, &admin.user_id).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_error(
        suspend(&app, &admin.access_token, "no-such-user").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );

    client(&app)
        .reactivate_user(with_bearer(
            &admin.access_token,
            pb::ReactivateUserRequest {
                user_id: login.user_id.clone(),
            },
        )?)
        .await?;
    let fresh = token_pair(&login_with(&app, &email, PASSWORD).await?)?;
    app.verify(&fresh.access_token).await?;
    verifier.verify_token(&fresh.access_token).await?;
    app.refresh(&fresh.refresh_token).await?;
    // What the suspension ended stays ended.
    assert_error(
        app.verify(&session).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let user = get_user(&app, &admin.access_token, Lookup::Email(email)).await?;
    assert!(!user.suspended && user.suspended_at.is_none());
    Ok(())
}

async fn a_session_left_live_by_an_interrupted_suspension_cannot_refresh(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("half")).await?;
    // The first half of a suspension only (as if the server died before revoking the sessions).
    let store = app.database.store().await?;
    assert!(store.suspend_user(&login.user_id, Timestamp::now()).await?);

    assert_error(
        app.refresh(&tokens.refresh_token).await,
        Code::Unauthenticated,
        "ACCOUNT_SUSPENDED",
    );
    // Refresh ended the session it found, so its access token dies too.
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn no_session_survives_a_suspension_that_races_with_logins(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let email = unique_email("race");
    let user_id = app.register(&email).await?;

    let logins: Vec<_> = (0..8)
        .map(|round| {
            let mut auth = app.auth.clone();
            let email = email.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(round * 15)).await;
                auth.login(pb::LoginRequest {
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
    tokio::time::sleep(Duration::from_millis(50)).await;
    suspend(&app, &admin.access_token, &user_id).await?;

    for login in logins {
        match login.await? {
            // A login that won the race: its session must be dead now anyway.
            Ok(response) => assert_error(
                app.verify(&session_token(&response)?).await,
                Code::Unauthenticated,
                "SESSION_REVOKED",
            ),
            Err(status) => {
                assert_error::<()>(Err(status), Code::Unauthenticated, "ACCOUNT_SUSPENDED")
            }
        }
    }
    let live = client(&app)
        .list_user_sessions(with_bearer(
            &admin.access_token,
            pb::ListUserSessionsRequest {
                user_id,
                ..Default::default()
            },
        )?)
        .await?
        .into_inner()
        .sessions;
    assert!(
        live.is_empty(),
        "sessions outlived the suspension: {live:?}"
    );
    Ok(())
}

async fn an_admin_lists_and_revokes_a_users_sessions(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let email = unique_email("managed");
    let (first, first_tokens) = app.user_with_tokens(&email).await?;
    let second = app.login(&email, CredentialKind::Session).await?;
    let third = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;

    let list = |user_id: String| {
        let request = with_bearer(
            &admin.access_token,
            pb::ListUserSessionsRequest {
                user_id,
                ..Default::default()
            },
        );
        let mut client = client(&app);
        async move {
            let request = request.map_err(|error| Status::internal(error.to_string()))?;
            Ok::<_, Status>(
                client
                    .list_user_sessions(request)
                    .await?
                    .into_inner()
                    .sessions,
            )
        }
    };
    let sessions = list(first.user_id.clone()).await?;
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions[1].session_id, second.session_id, "newest first");
    assert!(
        sessions
            .iter()
            .all(|s| !s.current && s.user_id == first.user_id)
    );
    // The admin's own listing marks the session it is made with.
    let own = list(admin.user_id.clone()).await?;
    assert_eq!(own.iter().filter(|s| s.current).count(), 1);

    client(&app)
        .revoke_session(with_bearer(
            &admin.access_token,
            pb::AdminRevokeSessionRequest {
                session_id: first.session_id.clone(),
            },
        )?)
        .await?;
    assert_error(
        app.verify(&first_tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_eq!(list(first.user_id.clone()).await?.len(), 2);

    let revoked = client(&app)
        .revoke_user_sessions(with_bearer(
            &admin.access_token,
            pb::RevokeUserSessionsRequest {
                user_id: first.user_id.clone(),
            },
        )?)
        .await?
        .into_inner()
        .revoked_count;
    assert_eq!(revoked, 2);
    assert_error(
        app.verify(&third.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert!(list(first.user_id.clone()).await?.is_empty());
    // Unlike a suspension, the user may log in again.
    app.login(&email, CredentialKind::Tokens).await?;

    assert_error(
        list("no-such-user".into()).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let unknown = client(&app)
        .revoke_session(with_bearer(
            &admin.access_token,
            pb::AdminRevokeSessionRequest {
                session_id: "no-such-session".into(),
            },
        )?)
        .await;
    assert_error(unknown, Code::NotFound, "SESSION_NOT_FOUND");
    let unknown = client(&app)
        .revoke_user_sessions(with_bearer(
            &admin.access_token,
            pb::RevokeUserSessionsRequest {
                user_id: "no-such-user".into(),
            },
        )?)
        .await;
    assert_error(unknown, Code::NotFound, "USER_NOT_FOUND");
    Ok(())
}

pub async fn jwks_kids(app: &TestApp) -> Result<Vec<String>, BoxError> {
    let json = app
        .keys
        .clone()
        .get_jwks(GetJwksRequest {})
        .await?
        .into_inner()
        .jwks_json;
    let set: serde_json::Value = serde_json::from_str(&json)?;
    Ok(set["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .filter_map(|key| key["kid"].as_str().map(str::to_owned))
        .collect())
}

fn kid_of(token: &str) -> Result<String, BoxError> {
    let header = token.split('.').next().ok_or("not a JWT")?;
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header)?)?;
    Ok(header["kid"].as_str().ok_or("no kid")?.to_owned())
}

async fn rotating_the_key_publishes_a_new_kid_in_the_jwks(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let email = unique_email("keys");
    let (_, before) = app.user_with_tokens(&email).await?;
    let old_kid = kid_of(&before.access_token)?;

    let rotate = |activate_in: Option<prost_types::Duration>| {
        let request = with_bearer(
            &admin.access_token,
            pb::RotateSigningKeyRequest { activate_in },
        );
        let mut client = client(&app);
        async move {
            let request = request.map_err(|error| Status::internal(error.to_string()))?;
            Ok::<_, Status>(client.rotate_signing_key(request).await?.into_inner())
        }
    };
    let started = auth_service::domain::Timestamp::now();
    let later = rotate(Some(prost_types::Duration {
        seconds: 600,
        nanos: 0,
    }))
    .await?;
    assert_ne!(later.kid, old_kid);
    let activates_at = later.activates_at.ok_or("activates_at")?.seconds;
    assert!(
        (activates_at - started.unix_seconds() - 600).abs() <= 2,
        "{activates_at}"
    );
    // Published at once, but the old key still signs.
    let kids = jwks_kids(&app).await?;
    assert!(
        kids.contains(&later.kid) && kids.contains(&old_kid),
        "{kids:?}"
    );
    let still_old = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    assert_eq!(kid_of(&still_old.access_token)?, old_kid);

    // Zero: signs from now on; tokens of the earlier keys stay valid.
    let now = rotate(Some(prost_types::Duration::default())).await?;
    assert!(jwks_kids(&app).await?.contains(&now.kid));
    let fresh = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    assert_eq!(kid_of(&fresh.access_token)?, now.kid);
    app.verify(&fresh.access_token).await?;
    app.verify(&before.access_token).await?;

    // Unset: the configured delay (AUTH_KEY_ACTIVATION_DELAY, 5 minutes by default).
    let default = rotate(None).await?;
    let activates_at = default.activates_at.ok_or("activates_at")?.seconds;
    assert!((activates_at - Timestamp::now().unix_seconds() - 300).abs() <= 2);

    let negative = rotate(Some(prost_types::Duration {
        seconds: -5,
        nanos: 0,
    }))
    .await;
    assert_error(negative, Code::InvalidArgument, "INVALID_ARGUMENT");
    let too_far = rotate(Some(prost_types::Duration {
        seconds: 31 * 24 * 3600,
        nanos: 0,
    }))
    .await;
    assert_error(too_far, Code::InvalidArgument, "INVALID_ARGUMENT");
    Ok(())
}

async fn every_admin_rpc_refuses_a_caller_without_the_admin_role(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (victim, victim_tokens) = app.user_with_tokens(&unique_email("victim")).await?;
    let mallory = unique_email("mallory");
    let (_, user) = app.user_with_tokens(&mallory).await?;
    let user_manager = app.manager_token(&mallory).await?;
    let kids_before = jwks_kids(&app).await?;

    // Each RPC once with `token` (None: no authorization header at all).
    async fn every_rpc(
        app: &TestApp,
        token: Option<&str>,
        victim: &pb::LoginResponse,
    ) -> Result<Vec<(&'static str, Result<(), Status>)>, BoxError> {
        fn request<T>(token: Option<&str>, message: T) -> Result<tonic::Request<T>, BoxError> {
            match token {
                Some(token) => with_bearer(token, message),
                None => Ok(tonic::Request::new(message)),
            }
        }
        let mut admin = client(app);
        let user_id = victim.user_id.clone();
        Ok(vec![
            (
                "CreateUser",
                admin
                    .create_user(request(
                        token,
                        pb::CreateUserRequest {
                            email: unique_email("sneaky"),
                            password: PASSWORD.into(),
                            roles: vec!["admin".into()],
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "GetUser",
                admin
                    .get_user(request(
                        token,
                        pb::GetUserRequest {
                            lookup: Some(Lookup::UserId(user_id.clone())),
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "SetRoles",
                admin
                    .set_roles(request(
                        token,
                        pb::SetRolesRequest {
                            user_id: user_id.clone(),
                            roles: vec!["admin".into()],
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "SuspendUser",
                admin
                    .suspend_user(request(
                        token,
                        pb::SuspendUserRequest {
                            user_id: user_id.clone(),
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "ReactivateUser",
                admin
                    .reactivate_user(request(
                        token,
                        pb::ReactivateUserRequest {
                            user_id: user_id.clone(),
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "ListUserSessions",
                admin
                    .list_user_sessions(request(
                        token,
                        pb::ListUserSessionsRequest {
                            user_id: user_id.clone(),
                            ..Default::default()
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "RevokeSession",
                admin
                    .revoke_session(request(
                        token,
                        pb::AdminRevokeSessionRequest {
                            session_id: victim.session_id.clone(),
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "RevokeUserSessions",
                admin
                    .revoke_user_sessions(request(
                        token,
                        pb::RevokeUserSessionsRequest {
                            user_id: user_id.clone(),
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "RotateSigningKey",
                admin
                    .rotate_signing_key(request(
                        token,
                        pb::RotateSigningKeyRequest {
                            // Even a malformed argument is not looked at before authorisation.
                            activate_in: Some(prost_types::Duration {
                                seconds: -1,
                                nanos: 0,
                            }),
                        },
                    )?)
                    .await
                    .map(drop),
            ),
            (
                "RevokeSigningKey",
                admin
                    .revoke_signing_key(request(
                        token,
                        pb::RevokeSigningKeyRequest {
                            // The key that signs right now: refusing matters.
                            kid: kid_of(&token_pair(victim)?.access_token)?,
                        },
                    )?)
                    .await
                    .map(drop),
            ),
        ])
    }

    let denied = every_rpc(&app, Some(&user_manager), &victim).await?;
    assert_eq!(denied.len(), 10);
    for (rpc, result) in denied {
        let status = result.err().ok_or(format!("{rpc} accepted a non-admin"))?;
        assert_error::<()>(Err(status), Code::PermissionDenied, "PERMISSION_DENIED");
    }
    // An app session's credential is refused before its roles are looked at.
    for (rpc, result) in every_rpc(&app, Some(&user.access_token), &victim).await? {
        let status = result.err().ok_or(format!("{rpc} accepted an app token"))?;
        assert_error::<()>(
            Err(status),
            Code::PermissionDenied,
            "MANAGEMENT_CREDENTIAL_REQUIRED",
        );
    }
    for (rpc, result) in every_rpc(&app, None, &victim).await? {
        let status = result.err().ok_or(format!("{rpc} accepted no token"))?;
        assert_error::<()>(Err(status), Code::Unauthenticated, "CREDENTIAL_MISSING");
    }
    for (rpc, result) in every_rpc(&app, Some("not.a.token"), &victim).await? {
        let status = result
            .err()
            .ok_or(format!("{rpc} accepted a forged token"))?;
        assert_error::<()>(Err(status), Code::Unauthenticated, "TOKEN_INVALID");
    }

    // Nothing happened: the victim is intact and unsuspended, and no key was rotated or revoked.
    let principal = app
        .verify(&victim_tokens.access_token)
        .await?
        .principal
        .ok_or("principal")?;
    assert!(principal.roles.is_empty());
    app.login(&principal.email, CredentialKind::Tokens).await?;
    assert_eq!(jwks_kids(&app).await?, kids_before);

    // An admin whose role is taken away is refused from the next call.
    let admin = admin(&app).await?;
    get_user(
        &app,
        &admin.access_token,
        Lookup::UserId(victim.user_id.clone()),
    )
    .await?;
    let other_admin = self::admin(&app).await?;
    client(&app)
        .set_roles(with_bearer(
            &other_admin.access_token,
            pb::SetRolesRequest {
                user_id: admin.user_id.clone(),
                roles: vec![],
            },
        )?)
        .await?;
    let demoted = client(&app)
        .get_user(with_bearer(
            &admin.access_token,
            pb::GetUserRequest {
                lookup: Some(Lookup::UserId(victim.user_id.clone())),
            },
        )?)
        .await;
    assert_error(demoted, Code::PermissionDenied, "PERMISSION_DENIED");
    Ok(())
}

#[tokio::test]
async fn reflection_lists_the_admin_service() -> TestResult {
    use tonic_reflection::pb::v1;
    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "auth.v1.AdminService".into(),
            ),
        ),
    };
    let mut responses = client
        .server_reflection_info(tonic::codegen::tokio_stream::iter([request]))
        .await?
        .into_inner();
    let response = responses.message().await?.ok_or("no reflection response")?;
    assert!(
        matches!(
            response.message_response,
            Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(ref files))
                if !files.file_descriptor_proto.is_empty()
        ),
        "{response:?}"
    );
    Ok(())
}

#[tokio::test]
async fn health_reports_the_admin_service() -> TestResult {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let status = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: "auth.v1.AdminService".into(),
        })
        .await?
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    Ok(())
}
