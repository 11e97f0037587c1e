//! Account administration: listing accounts a page at a time, deleting one (a tombstone keeps its
//! id), setting a user's password, paginated session listings, and the audit trail every
//! AdminService call leaves in the log and the metrics.

use auth_api::v1::{self as pb, CredentialKind, get_user_request::Lookup};
use tonic::{Code, Status};

use crate::admin::{BoxError, admin, client, login_with};
use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, session_token,
    token_pair, with_bearer,
};

on_both_backends!(
    an_admin_lists_users_a_page_at_a_time_filtered_by_email_role_and_suspension,
    a_deleted_user_loses_every_session_and_only_a_tombstone_keeps_the_id,
    an_admin_sets_a_password_and_every_session_of_the_user_ends,
    session_listings_are_paginated_and_a_client_sending_no_page_size_gets_every_session,
);

pub async fn create_user(
    app: &TestApp,
    token: &str,
    email: &str,
    roles: &[&str],
) -> Result<String, BoxError> {
    let request = pb::CreateUserRequest {
        email: email.into(),
        password: PASSWORD.into(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
    };
    Ok(client(app)
        .create_user(with_bearer(token, request)?)
        .await?
        .into_inner()
        .user_id)
}

async fn list_users(
    app: &TestApp,
    token: &str,
    request: pb::ListUsersRequest,
) -> Result<pb::ListUsersResponse, Status> {
    let request =
        with_bearer(token, request).map_err(|error| Status::internal(error.to_string()))?;
    Ok(client(app).list_users(request).await?.into_inner())
}

/// Every page of a listing, following the tokens; the emails in order.
async fn every_page(
    app: &TestApp,
    token: &str,
    mut request: pb::ListUsersRequest,
) -> Result<(Vec<String>, usize), BoxError> {
    let mut emails = Vec::new();
    let mut pages = 0;
    loop {
        let page = list_users(app, token, request.clone()).await?;
        pages += 1;
        assert!(page.users.len() <= request.page_size as usize || request.page_size == 0);
        emails.extend(page.users.into_iter().map(|user| user.email));
        if page.next_page_token.is_empty() {
            return Ok((emails, pages));
        }
        request.page_token = page.next_page_token;
    }
}

async fn an_admin_lists_users_a_page_at_a_time_filtered_by_email_role_and_suspension(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let token = &admin.access_token;
    create_user(&app, token, "ann@list.test", &["billing"]).await?;
    create_user(&app, token, "Anna@list.test", &["billing", "support"]).await?;
    create_user(&app, token, "bob@list.test", &[]).await?;
    let carl = create_user(&app, token, "carl@list.test", &["support"]).await?;
    create_user(&app, token, "dora@list.test", &["bill_ing"]).await?;
    client(&app)
        .suspend_user(with_bearer(
            token,
            pb::SuspendUserRequest { user_id: carl },
        )?)
        .await?;
    // A service client is a principal too, but not an account to list.
    client(&app)
        .create_service_client(with_bearer(
            token,
            pb::CreateServiceClientRequest {
                name: "orders".into(),
                audiences: vec!["inventory".into()],
                ..Default::default()
            },
        )?)
        .await?;

    // Pages of two, in creation order, each account once; the last page has no token.
    let all = pb::ListUsersRequest {
        page_size: 2,
        ..Default::default()
    };
    let (emails, pages) = every_page(&app, token, all).await?;
    assert_eq!(
        emails,
        [
            admin.email.as_str(),
            "ann@list.test",
            "Anna@list.test",
            "bob@list.test",
            "carl@list.test",
            "dora@list.test"
        ]
    );
    assert_eq!(pages, 3);
    // No page size: the default (50) holds them all.
    let (emails, pages) = every_page(&app, token, pb::ListUsersRequest::default()).await?;
    assert_eq!((emails.len(), pages), (6, 1));

    let filtered = |email_prefix: &str, role: &str, suspended: Option<bool>| pb::ListUsersRequest {
        page_size: 1,
        email_prefix: email_prefix.into(),
        role: role.into(),
        suspended,
        ..Default::default()
    };
    let (emails, _) = every_page(&app, token, filtered("ANN", "", None)).await?;
    assert_eq!(emails, ["ann@list.test", "Anna@list.test"]);
    // A role matches whole (`bill_ing` is no pattern for `billing`).
    let (emails, _) = every_page(&app, token, filtered("", "billing", None)).await?;
    assert_eq!(emails, ["ann@list.test", "Anna@list.test"]);
    let (emails, _) = every_page(&app, token, filtered("", "bill_ing", None)).await?;
    assert_eq!(emails, ["dora@list.test"]);
    let (emails, _) = every_page(&app, token, filtered("", "support", Some(false))).await?;
    assert_eq!(emails, ["Anna@list.test"]);
    let (emails, _) = every_page(&app, token, filtered("", "", Some(true))).await?;
    assert_eq!(emails, ["carl@list.test"]);

    let listed = list_users(&app, token, filtered("", "", None)).await?;
    let user = &listed.users[0];
    assert_eq!(user.user_id, admin.user_id);
    assert_eq!(user.roles, ["admin"]);

    let forged = pb::ListUsersRequest {
        page_token: "bm90IGEgdG9rZW4".into(),
        ..Default::default()
    };
    assert_error(
        list_users(&app, token, forged).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let two_words = filtered("", "two words", None);
    assert_error(
        list_users(&app, token, two_words).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    // A session token of a user without the admin role lists nothing.
    let login = app
        .login_management("bob@list.test", CredentialKind::Session)
        .await?;
    assert_error(
        list_users(
            &app,
            &session_token(&login)?,
            pb::ListUsersRequest::default(),
        )
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    Ok(())
}

async fn delete(
    app: &TestApp,
    token: &str,
    user_id: &str,
) -> Result<pb::DeleteUserResponse, Status> {
    let request = with_bearer(
        token,
        pb::DeleteUserRequest {
            user_id: user_id.into(),
        },
    )
    .map_err(|error| Status::internal(error.to_string()))?;
    Ok(client(app).delete_user(request).await?.into_inner())
}

async fn a_deleted_user_loses_every_session_and_only_a_tombstone_keeps_the_id(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let token = &admin.access_token;
    let email = "gone@delete.test";
    let user_id = create_user(&app, token, email, &["billing"]).await?;
    let tokens = token_pair(&login_with(&app, email, PASSWORD).await?)?;
    let manager = app.manager_token(email).await?;

    let deleted = delete(&app, token, &user_id).await?;
    assert_eq!((deleted.revoked_count, deleted.newly_deleted), (2, true));
    // Every credential is dead at once, and the refresh token too.
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.verify(&manager).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert!(app.refresh(&tokens.refresh_token).await.is_err());
    // The password no longer logs in: answered like an unknown email.
    assert_error(
        login_with(&app, email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    // Administrators see why the id names nobody; the email names nothing.
    let by_id = client(&app)
        .get_user(with_bearer(
            token,
            pb::GetUserRequest {
                lookup: Some(Lookup::UserId(user_id.clone())),
            },
        )?)
        .await;
    assert_error(by_id, Code::NotFound, "USER_DELETED");
    let by_email = client(&app)
        .get_user(with_bearer(
            token,
            pb::GetUserRequest {
                lookup: Some(Lookup::Email(email.into())),
            },
        )?)
        .await;
    assert_error(by_email, Code::NotFound, "USER_NOT_FOUND");
    let roles = client(&app)
        .set_roles(with_bearer(
            token,
            pb::SetRolesRequest {
                user_id: user_id.clone(),
                roles: vec!["admin".into()],
            },
        )?)
        .await;
    assert_error(roles, Code::NotFound, "USER_DELETED");
    let password = client(&app)
        .set_password(with_bearer(
            token,
            pb::SetPasswordRequest {
                user_id: user_id.clone(),
                password: "a brand new passphrase".into(),
            },
        )?)
        .await;
    assert_error(password, Code::NotFound, "USER_DELETED");
    // The tombstone is not listed; deleting again changes nothing.
    let listed = list_users(&app, token, pb::ListUsersRequest::default()).await?;
    assert!(listed.users.iter().all(|user| user.user_id != user_id));
    let again = delete(&app, token, &user_id).await?;
    assert_eq!((again.revoked_count, again.newly_deleted), (0, false));

    // The email is free again, for a new account with a new id.
    let reborn = create_user(&app, token, email, &[]).await?;
    assert_ne!(reborn, user_id);
    let principal = app
        .verify(&token_pair(&login_with(&app, email, PASSWORD).await?)?.access_token)
        .await?
        .principal
        .ok_or("principal")?;
    assert_eq!(
        (principal.user_id.as_str(), principal.roles.len()),
        (reborn.as_str(), 0)
    );

    assert_error(
        delete(&app, token, &admin.user_id).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_error(
        delete(&app, token, "nobody").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_error(
        delete(&app, token, "").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    Ok(())
}

async fn an_admin_sets_a_password_and_every_session_of_the_user_ends(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let token = &admin.access_token;
    let email = "forgetful@password.test";
    let user_id = create_user(&app, token, email, &[]).await?;
    let tokens = token_pair(&login_with(&app, email, PASSWORD).await?)?;
    let set = |password: &str| {
        let request = with_bearer(
            token,
            pb::SetPasswordRequest {
                user_id: user_id.clone(),
                password: password.into(),
            },
        );
        let mut client = client(&app);
        async move {
            client
                .set_password(request.map_err(|e| Status::internal(e.to_string()))?)
                .await
        }
    };
    assert_error(set("short").await, Code::InvalidArgument, "WEAK_PASSWORD");
    assert_error(
        set("password1").await,
        Code::InvalidArgument,
        "COMMON_PASSWORD",
    );
    // The refusals changed nothing.
    app.verify(&tokens.access_token).await?;

    let new_password = "a fresh start for everyone";
    assert_eq!(set(new_password).await?.into_inner().revoked_count, 1);
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        login_with(&app, email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    login_with(&app, email, new_password).await?;

    let own = client(&app)
        .set_password(with_bearer(
            token,
            pb::SetPasswordRequest {
                user_id: admin.user_id.clone(),
                password: new_password.into(),
            },
        )?)
        .await;
    assert_error(own, Code::InvalidArgument, "INVALID_ARGUMENT");
    let unknown = client(&app)
        .set_password(with_bearer(
            token,
            pb::SetPasswordRequest {
                user_id: "nobody".into(),
                password: new_password.into(),
            },
        )?)
        .await;
    assert_error(unknown, Code::NotFound, "USER_NOT_FOUND");
    Ok(())
}

async fn session_listings_are_paginated_and_a_client_sending_no_page_size_gets_every_session(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let email = "busy@sessions.test";
    let user_id = create_user(&app, &admin.access_token, email, &[]).await?;
    let mut managers = Vec::new();
    for _ in 0..5 {
        managers.push(app.manager_token(email).await?);
    }
    // As an older client asks: no page size, no token. Every session, newest first.
    let everything = app.list_sessions(&managers[0]).await?;
    assert_eq!(everything.len(), 5);

    let mut listed = Vec::new();
    let mut request = pb::ListSessionsRequest {
        page_size: 2,
        ..Default::default()
    };
    loop {
        let page = app
            .auth
            .clone()
            .list_sessions(with_bearer(&managers[0], request.clone())?)
            .await?
            .into_inner();
        assert!(page.sessions.len() <= 2);
        listed.extend(page.sessions);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(listed, everything);

    let mut by_admin = Vec::new();
    let mut request = pb::ListUserSessionsRequest {
        user_id: user_id.clone(),
        page_size: 3,
        page_token: String::new(),
    };
    loop {
        let page = client(&app)
            .list_user_sessions(with_bearer(&admin.access_token, request.clone())?)
            .await?
            .into_inner();
        by_admin.extend(page.sessions.into_iter().map(|session| session.session_id));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let ids: Vec<String> = everything.into_iter().map(|s| s.session_id).collect();
    assert_eq!(by_admin, ids);

    let forged = app
        .auth
        .clone()
        .list_sessions(with_bearer(
            &managers[0],
            pb::ListSessionsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
        )?)
        .await;
    assert_error(forged, Code::InvalidArgument, "INVALID_ARGUMENT");
    Ok(())
}
