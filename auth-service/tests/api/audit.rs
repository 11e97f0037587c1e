//! The audit trail: every AdminService call, allowed or refused, is one structured event in the
//! log (target `audit`: who, what, whom, when, from where, outcome) and one count in
//! `auth_admin_actions_total{action, outcome}`.

use std::process::Command;

use auth_api::v1::{
    self as pb, CredentialKind, admin_service_client::AdminServiceClient,
    auth_service_client::AuthServiceClient,
};
use auth_service::domain::Timestamp;
use serde_json::Value;
use tonic::transport::Channel;

use crate::account_admin::create_user;
use crate::admin::{admin, client};
use crate::helpers::{
    Backend, PASSWORD, TestApp, TestDatabase, TestResult, session_token, start_listening,
    test_settings, with_bearer,
};
use crate::observability::{sample, scrape};

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_call_is_written_to_the_audit_log_allowed_or_refused() -> TestResult {
    let database = TestDatabase::create(&Backend::Sqlite).await?;
    // The admin and a plain user, made as `auth-service user create` does.
    let components = auth_service::app::Components::open(&test_settings(&database)).await?;
    let admin_id = components
        .core
        .create_user(
            "root@audit.test",
            PASSWORD.into(),
            &["admin".into()],
            Timestamp::now(),
        )
        .await?;
    let user_id = components
        .core
        .create_user("plain@audit.test", PASSWORD.into(), &[], Timestamp::now())
        .await?;
    let other_id = components
        .core
        .create_user("other@audit.test", PASSWORD.into(), &[], Timestamp::now())
        .await?;
    drop(components);

    let mut command = Command::new(BINARY);
    command
        .envs(database.env())
        .env("RUST_LOG", "warn,audit=info")
        .env("AUTH_LOG_FORMAT", "json");
    let mut server = start_listening(command)?;
    let channel = Channel::from_shared(format!("http://{}", server.addr))?
        .connect()
        .await?;
    let manager = |email: &'static str| {
        let mut auth = AuthServiceClient::new(channel.clone());
        async move {
            session_token(
                &auth
                    .login(pb::LoginRequest {
                        email: email.into(),
                        password: PASSWORD.into(),
                        kind: CredentialKind::Session.into(),
                        management: true,
                    })
                    .await?
                    .into_inner(),
            )
        }
    };
    let root = manager("root@audit.test").await?;
    let other = manager("other@audit.test").await?;
    let mut admin_client = AdminServiceClient::new(channel.clone());
    let secret = "a password for the log to never see";
    // The calls' answers are checked once the server is stopped: a failed check must not leave
    // it running.
    let set = admin_client
        .set_password(with_bearer(
            &root,
            pb::SetPasswordRequest {
                user_id: user_id.clone(),
                password: secret.into(),
            },
        )?)
        .await;
    let deleted = admin_client
        .delete_user(with_bearer(
            &root,
            pb::DeleteUserRequest {
                user_id: user_id.clone(),
            },
        )?)
        .await;
    // Refused: a non-admin, and a caller without a token.
    let refused = admin_client
        .list_users(with_bearer(&other, pb::ListUsersRequest::default())?)
        .await;
    let anonymous = admin_client
        .rotate_signing_key(pb::RotateSigningKeyRequest::default())
        .await;

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()?;
    assert!(status.success());
    let logs = server.logs.join().map_err(|_| "the log reader panicked")?;
    server.child.wait()?;
    set?;
    assert!(deleted?.into_inner().newly_deleted);
    assert!(refused.is_err() && anonymous.is_err());
    assert!(!logs.contains(secret), "the password reached the log");

    let events: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "audit")
        .map(|line| line["fields"].clone())
        .collect();
    let summary: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|event| {
            (
                event["action"].as_str().unwrap_or_default(),
                event["admin"].as_str().unwrap_or_default(),
                event["target_id"].as_str().unwrap_or_default(),
                event["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("set_password", admin_id.as_str(), user_id.as_str(), "ok"),
            ("delete_user", admin_id.as_str(), user_id.as_str(), "ok"),
            ("list_users", other_id.as_str(), "", "PERMISSION_DENIED"),
            ("rotate_signing_key", "", "", "CREDENTIAL_MISSING"),
        ]
    );
    for event in &events {
        let client = event["client"].as_str().unwrap_or_default();
        assert!(client.starts_with("127.0.0.1:"), "{event}");
        assert!(event["at_ms"].as_i64().is_some_and(|at| at > 0), "{event}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_are_counted_by_action_and_outcome() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.http.http_addr = Some(([127, 0, 0, 1], 0).into());
    })
    .await?;
    let admin = admin(&app).await?;
    let user_id = create_user(&app, &admin.access_token, "counted@audit.test", &[]).await?;
    client(&app)
        .delete_user(with_bearer(
            &admin.access_token,
            pb::DeleteUserRequest { user_id },
        )?)
        .await?;
    let missing = client(&app)
        .delete_user(with_bearer(
            &admin.access_token,
            pb::DeleteUserRequest {
                user_id: "nobody".into(),
            },
        )?)
        .await;
    assert!(missing.is_err());
    let body = scrape(&app).await?;
    for (series, count) in [
        (
            r#"auth_admin_actions_total{action="create_user",outcome="ok"}"#,
            1.0,
        ),
        (
            r#"auth_admin_actions_total{action="delete_user",outcome="ok"}"#,
            1.0,
        ),
        (
            r#"auth_admin_actions_total{action="delete_user",outcome="refused"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&body, series), Some(count), "{series} in\n{body}");
    }
    Ok(())
}
