//! Input that must never reach a query or become a second account: NUL bytes on the
//! administrative paths (an error in PostgreSQL rather than a miss) are refused with
//! `INVALID_ARGUMENT`; email addresses are compared in Unicode NFC, and bidirectional or
//! zero-width characters (which would show one address as another) are refused.

use auth_api::v1::{self as pb, CredentialKind, admin_service_client::AdminServiceClient};
use tonic::{Code, Request, Status};

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, unique_email,
    with_bearer,
};

on_both_backends!(
    nul_bytes_on_the_admin_paths_are_invalid_arguments,
    an_email_in_another_unicode_form_is_the_same_account,
    an_email_with_invisible_or_bidi_characters_is_refused,
);

const NUL_ID: &str = "user\0id";

async fn nul_bytes_on_the_admin_paths_are_invalid_arguments(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let administrator = crate::admin::admin(&app).await?;
    let token = administrator.session_token.clone();
    let admin = AdminServiceClient::new(app.channel.clone());
    let invalid = (Code::InvalidArgument, "INVALID_ARGUMENT");
    let by_id = pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::UserId(NUL_ID.into())),
    };
    let by_email = pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::Email(
            "a\0b@example.com".into(),
        )),
    };
    assert_error(
        admin.clone().get_user(bearer(&token, by_id)?).await,
        invalid.0,
        invalid.1,
    );
    assert_error(
        admin.clone().get_user(bearer(&token, by_email)?).await,
        invalid.0,
        invalid.1,
    );
    let set_roles = pb::SetRolesRequest {
        user_id: NUL_ID.into(),
        roles: vec!["billing".into()],
    };
    assert_error(
        admin.clone().set_roles(bearer(&token, set_roles)?).await,
        invalid.0,
        invalid.1,
    );
    let suspend = pb::SuspendUserRequest {
        user_id: NUL_ID.into(),
    };
    assert_error(
        admin.clone().suspend_user(bearer(&token, suspend)?).await,
        invalid.0,
        invalid.1,
    );
    let reactivate = pb::ReactivateUserRequest {
        user_id: NUL_ID.into(),
    };
    assert_error(
        admin
            .clone()
            .reactivate_user(bearer(&token, reactivate)?)
            .await,
        invalid.0,
        invalid.1,
    );
    let list = pb::ListUserSessionsRequest {
        user_id: NUL_ID.into(),
        ..Default::default()
    };
    assert_error(
        admin
            .clone()
            .list_user_sessions(bearer(&token, list)?)
            .await,
        invalid.0,
        invalid.1,
    );
    let revoke = pb::AdminRevokeSessionRequest {
        session_id: "session\0id".into(),
    };
    assert_error(
        admin.clone().revoke_session(bearer(&token, revoke)?).await,
        invalid.0,
        invalid.1,
    );
    let revoke_all = pb::RevokeUserSessionsRequest {
        user_id: NUL_ID.into(),
    };
    assert_error(
        admin
            .clone()
            .revoke_user_sessions(bearer(&token, revoke_all)?)
            .await,
        invalid.0,
        invalid.1,
    );
    let own_list = pb::ListSessionsRequest {
        user_id: NUL_ID.into(),
        ..Default::default()
    };
    assert_error(
        app.auth
            .clone()
            .list_sessions(bearer(&token, own_list)?)
            .await,
        invalid.0,
        invalid.1,
    );
    // The administrator's session is untouched, and a genuine lookup still works.
    let own = pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::Email(
            administrator.email.clone(),
        )),
    };
    admin.clone().get_user(bearer(&token, own)?).await?;
    Ok(())
}

fn bearer<T>(token: &str, message: T) -> Result<Request<T>, Status> {
    with_bearer(token, message).map_err(|error| Status::internal(error.to_string()))
}

async fn register(app: &TestApp, email: &str) -> Result<String, Status> {
    Ok(app
        .auth
        .clone()
        .register(pb::RegisterRequest {
            email: email.into(),
            password: PASSWORD.into(),
        })
        .await?
        .into_inner()
        .user_id)
}

async fn an_email_in_another_unicode_form_is_the_same_account(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let local = unique_email("nfc").replace('@', "-jose\u{301}@");
    let composed = local.replace("e\u{301}", "\u{e9}");
    register(&app, &local).await?;
    // Logging in with the composed form finds the account registered in the decomposed one.
    app.login(&composed, CredentialKind::Tokens).await?;
    assert_error(
        register(&app, &composed).await,
        Code::AlreadyExists,
        "EMAIL_TAKEN",
    );
    Ok(())
}

async fn an_email_with_invisible_or_bidi_characters_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("victim");
    register(&app, &email).await?;
    for sneaky in [
        email.replacen('@', "\u{200B}@", 1),
        email.replacen('@', "\u{202E}@", 1),
        format!("\u{FEFF}{email}"),
    ] {
        assert_error(
            register(&app, &sneaky).await,
            Code::InvalidArgument,
            "INVALID_EMAIL",
        );
    }
    Ok(())
}
