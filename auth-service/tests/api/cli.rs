//! The real binary: `user create` for the first admin, and durability across `kill -9`.

use std::{
    io::Write,
    process::{Child, Command, Stdio},
};

use auth_api::v1::{self as pb, auth_service_client::AuthServiceClient};
use tonic::{Code, transport::Channel};

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestDatabase, TestResult, assert_error, on_both_backends,
    start_listening, test_settings, token_pair, unique_email,
};

on_both_backends!(
    user_create_reads_the_password_from_stdin_and_grants_roles,
    every_acknowledged_write_survives_kill_9,
);

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

fn command(database: &TestDatabase) -> Command {
    let mut command = Command::new(BINARY);
    command.envs(database.env()).env("RUST_LOG", "warn");
    command
}

async fn user_create_reads_the_password_from_stdin_and_grants_roles(
    backend: Backend,
) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    let email = unique_email("first-admin");
    let mut child = command(&database)
        .env("RUST_LOG", "warn,audit=info")
        .args(["user", "create", "--email", &email, "--role", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(format!("{PASSWORD}\nignored\n").as_bytes())?;
    let output = child.wait_with_output()?;
    assert!(output.status.success(), "user create failed: {output:?}");
    assert!(String::from_utf8(output.stdout)?.contains(&email));
    // The offline command is on the audit trail too, without the password.
    let log = String::from_utf8(output.stderr)?;
    assert!(
        log.contains("admin action") && log.contains("create_user") && !log.contains(PASSWORD),
        "{log}"
    );

    let app = TestApp::start(database.clone(), test_settings(&database)).await?;
    let login = app.login(&email, pb::CredentialKind::Tokens).await?;
    let verified = app.verify(&token_pair(&login)?.access_token).await?;
    assert_eq!(verified.principal.ok_or("principal")?.roles, ["admin"]);

    // A second account with the same email is refused, and the command says so.
    let mut again = command(&database)
        .args(["user", "create", "--email", &email])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    again
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(b"another password\n")?;
    assert!(!again.wait_with_output()?.status.success());
    Ok(())
}

struct Server {
    child: Child,
    client: AuthServiceClient<Channel>,
}

async fn start_binary(
    database: &TestDatabase,
) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
    let listening = start_listening(command(database))?;
    let channel = Channel::from_shared(format!("http://{}", listening.addr))?
        .connect()
        .await?;
    Ok(Server {
        child: listening.child,
        client: AuthServiceClient::new(channel),
    })
}

async fn every_acknowledged_write_survives_kill_9(backend: Backend) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    let mut server = start_binary(&database).await?;
    let email = unique_email("crash");
    server
        .client
        .register(pb::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
        })
        .await?;
    let login = |client: &mut AuthServiceClient<Channel>| {
        let request = pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            kind: 0,
            management: false,
        };
        let mut client = client.clone();
        async move { client.login(request).await.map(|r| r.into_inner()) }
    };
    let first = token_pair(&login(&mut server.client).await?)?;
    let rotated = server
        .client
        .refresh(pb::RefreshRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await?
        .into_inner()
        .tokens
        .ok_or("tokens")?;
    let ended = token_pair(&login(&mut server.client).await?)?;
    server
        .client
        .logout(pb::LogoutRequest {
            token: ended.access_token.clone(),
        })
        .await?;

    server.child.kill()?; // SIGKILL: no shutdown path runs.
    server.child.wait()?;

    let mut server = start_binary(&database).await?;
    let verify = |token: &str| {
        let request = pb::VerifyRequest {
            token: token.into(),
            audience: String::new(),
        };
        let mut client = server.client.clone();
        async move { client.verify(request).await }
    };
    verify(&rotated.access_token).await?;
    assert_error(
        verify(&ended.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    server
        .client
        .refresh(pb::RefreshRequest {
            refresh_token: rotated.refresh_token.clone(),
        })
        .await?;
    server.child.kill()?;
    server.child.wait()?;
    Ok(())
}
