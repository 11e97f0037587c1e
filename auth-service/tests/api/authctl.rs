//! The real `authctl` binary (crate `authctl/`) against a running server: the token from the
//! environment or a file (never a flag), tables and `--json`, and errors with their reason.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

use auth_api::v1::{self as pb, CredentialKind, get_user_request::Lookup};
use serde_json::Value;
use tonic::Code;

use crate::admin::{BoxError, admin, client, jwks_kids};
use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, token_pair,
    unique_email, with_bearer,
};

on_both_backends!(
    authctl_manages_accounts_and_sessions_with_a_token_from_the_environment,
    authctl_reads_its_token_from_a_file,
    authctl_login_prints_a_management_token_the_other_commands_accept,
    authctl_creates_lists_rotates_and_disables_service_clients,
    authctl_lists_accounts_sets_a_password_from_stdin_and_deletes_an_account,
);

/// The `authctl` binary. It belongs to another package, so cargo gives this test no
/// `CARGO_BIN_EXE_authctl`: the first call runs `cargo build -p authctl` (this run's target
/// directory and settings; nothing to do when it is up to date) and every call returns the
/// executable cargo reported.
fn binary() -> Result<PathBuf, BoxError> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    Ok(BUILT.get_or_init(build).clone()?)
}

fn build() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", "authctl", "--bin", "authctl"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build -p authctl failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "authctl"
        })
        .and_then(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo build -p authctl reported no authctl executable".to_owned())
}

/// How the child gets its token.
pub(crate) enum Auth<'a> {
    Env(&'a str),
    /// `--token-file PATH`.
    FileFlag(&'a std::path::Path),
    /// `AUTHCTL_TOKEN_FILE=PATH`.
    FileEnv(&'a std::path::Path),
    /// Both `AUTHCTL_TOKEN` and `AUTHCTL_TOKEN_FILE`.
    EnvOverFileEnv(&'a str, &'a std::path::Path),
    None,
}

/// Runs `authctl --server <app> args...` with a clean `AUTHCTL_*` environment, feeding `stdin`.
pub(crate) async fn authctl(
    app: &TestApp,
    auth: Auth<'_>,
    args: &[&str],
    stdin: &str,
) -> Result<Output, BoxError> {
    let mut command = Command::new(tokio::task::spawn_blocking(binary).await??);
    command
        .env_remove("AUTHCTL_TOKEN")
        .env_remove("AUTHCTL_TOKEN_FILE")
        .env_remove("AUTHCTL_SERVER")
        .arg("--server")
        .arg(format!("http://{}", app.addr))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match auth {
        Auth::Env(token) => {
            command.env("AUTHCTL_TOKEN", token);
        }
        Auth::FileFlag(path) => {
            command.arg("--token-file").arg(path);
        }
        Auth::FileEnv(path) => {
            command.env("AUTHCTL_TOKEN_FILE", path);
        }
        Auth::EnvOverFileEnv(token, path) => {
            command
                .env("AUTHCTL_TOKEN", token)
                .env("AUTHCTL_TOKEN_FILE", path);
        }
        Auth::None => {}
    }
    let stdin = stdin.to_owned();
    // The server runs on this test's runtime: wait for the child off it.
    Ok(tokio::task::spawn_blocking(move || {
        let mut child = command.spawn()?;
        if let Some(mut input) = child.stdin.take() {
            // authctl may exit (a usage error) before reading its input: that is not a failure.
            match input.write_all(stdin.as_bytes()) {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error),
                _ => {}
            }
        }
        child.wait_with_output()
    })
    .await??)
}

pub(crate) fn stdout(output: &Output) -> Result<String, BoxError> {
    if !output.status.success() {
        return Err(format!(
            "authctl failed ({:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout.clone())?)
}

fn json(output: &Output) -> Result<Value, BoxError> {
    Ok(serde_json::from_str(&stdout(output)?)?)
}

async fn authctl_manages_accounts_and_sessions_with_a_token_from_the_environment(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let token = Auth::Env;
    let email = unique_email("ctl");

    let created = authctl(
        &app,
        token(&admin.session_token),
        &["user", "create", "--email", &email, "--role", "billing"],
        &format!("{PASSWORD}\nignored\n"),
    )
    .await?;
    let text = stdout(&created)?;
    assert!(
        text.starts_with("created user ") && text.contains(&email),
        "{text}"
    );

    let user = json(
        &authctl(
            &app,
            token(&admin.session_token),
            &["--json", "user", "get", &email],
            "",
        )
        .await?,
    )?;
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["roles"], serde_json::json!(["billing"]));
    assert_eq!(user["suspended"], false);
    let user_id = user["userId"].as_str().ok_or("userId")?.to_owned();
    let shown = stdout(
        &authctl(
            &app,
            token(&admin.session_token),
            &["user", "get", &user_id],
            "",
        )
        .await?,
    )?;
    assert!(shown.contains(&format!("user id  {user_id}")), "{shown}");
    assert!(
        shown.contains("roles    billing") && shown.contains("status   active"),
        "{shown}"
    );

    // Two sessions: a table with a header and two aligned rows, and the same as JSON.
    let first = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    let second = app.login(&email, CredentialKind::Session).await?;
    let table = stdout(
        &authctl(
            &app,
            token(&admin.access_token),
            &["sessions", "list", &email],
            "",
        )
        .await?,
    )?;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("SESSION "), "{table}");
    assert!(
        lines[1].starts_with(&second.session_id),
        "newest first: {table}"
    );
    let kind_column = lines[0].find("KIND").ok_or("no KIND column")?;
    assert_eq!(lines[1].get(kind_column..kind_column + 7), Some("session"));
    assert_eq!(lines[2].get(kind_column..kind_column + 6), Some("tokens"));
    let listed = json(
        &authctl(
            &app,
            token(&admin.session_token),
            &["sessions", "list", &user_id, "--json"],
            "",
        )
        .await?,
    )?;
    let sessions = listed["sessions"].as_array().ok_or("sessions")?;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["sessionId"], second.session_id.as_str());
    assert_eq!(sessions[0]["kind"], "CREDENTIAL_KIND_SESSION");
    assert!(
        sessions[1]["createdAt"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );

    let roles = json(
        &authctl(
            &app,
            token(&admin.session_token),
            &[
                "--json",
                "user",
                "set-roles",
                &email,
                "--role",
                "auditor",
                "--role",
                "billing",
            ],
            "",
        )
        .await?,
    )?;
    assert_eq!(roles["roles"], serde_json::json!(["auditor", "billing"]));
    let principal = app
        .verify(&first.access_token)
        .await?
        .principal
        .ok_or("principal")?;
    assert_eq!(principal.roles, ["auditor", "billing"]);

    let suspended = stdout(
        &authctl(
            &app,
            token(&admin.session_token),
            &["user", "suspend", &email],
            "",
        )
        .await?,
    )?;
    assert_eq!(
        suspended.trim(),
        format!("suspended user {user_id}; ended 2 live sessions")
    );
    assert_error(
        app.verify(&first.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.login(&email, CredentialKind::Tokens).await,
        Code::Unauthenticated,
        "ACCOUNT_SUSPENDED",
    );
    let user = json(
        &authctl(
            &app,
            token(&admin.session_token),
            &["--json", "user", "get", &user_id],
            "",
        )
        .await?,
    )?;
    assert_eq!(user["suspended"], true);
    stdout(
        &authctl(
            &app,
            token(&admin.session_token),
            &["user", "reactivate", &user_id],
            "",
        )
        .await?,
    )?;
    let again = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;

    let empty_then_one = stdout(
        &authctl(
            &app,
            token(&admin.session_token),
            &["sessions", "list", &user_id],
            "",
        )
        .await?,
    )?;
    assert_eq!(empty_then_one.lines().count(), 2, "{empty_then_one}");
    let session_id = empty_then_one
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().next())
        .ok_or("no session row")?
        .to_owned();
    stdout(
        &authctl(
            &app,
            token(&admin.session_token),
            &["sessions", "revoke", &session_id],
            "",
        )
        .await?,
    )?;
    assert_error(
        app.verify(&again.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.login(&email, CredentialKind::Session).await?;
    let revoked = json(
        &authctl(
            &app,
            token(&admin.session_token),
            &["--json", "sessions", "revoke-all", &email],
            "",
        )
        .await?,
    )?;
    assert_eq!(revoked["revokedCount"], 1);
    let none = stdout(
        &authctl(
            &app,
            token(&admin.session_token),
            &["sessions", "list", &email],
            "",
        )
        .await?,
    )?;
    assert_eq!(none.trim(), format!("no live sessions for user {user_id}"));

    let rotated = json(
        &authctl(
            &app,
            token(&admin.session_token),
            &["--json", "keys", "rotate", "--activate-in", "5m"],
            "",
        )
        .await?,
    )?;
    let kid = rotated["kid"].as_str().ok_or("kid")?.to_owned();
    assert!(jwks_kids(&app).await?.contains(&kid));
    assert!(
        rotated["activatesAt"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    // Revoking (here the key just published): out of the JWKS, a successor signs from now.
    let revoked = json(
        &authctl(
            &app,
            token(&admin.access_token),
            &["--json", "keys", "revoke", &kid],
            "",
        )
        .await?,
    )?;
    assert_eq!(revoked["newlyRevoked"], true);
    let successor = revoked["successorKid"].as_str().ok_or("successorKid")?;
    let kids = jwks_kids(&app).await?;
    assert!(!kids.contains(&kid) && kids.contains(&successor.to_owned()));
    let again = stdout(
        &authctl(
            &app,
            token(&admin.access_token),
            &["keys", "revoke", &kid],
            "",
        )
        .await?,
    )?;
    assert_eq!(again.trim(), format!("key {kid} was already revoked"));

    // A refusal: the reason and message on stderr, a non-zero exit, nothing on stdout.
    let plain = unique_email("plain");
    let (_, user_tokens) = app.user_with_tokens(&plain).await?;
    let user_manager = app.manager_token(&plain).await?;
    let denied = authctl(&app, token(&user_manager), &["user", "get", &user_id], "").await?;
    assert_eq!(denied.status.code(), Some(1));
    assert!(denied.stdout.is_empty());
    let stderr = String::from_utf8(denied.stderr)?;
    assert!(
        stderr.starts_with("authctl: PERMISSION_DENIED: "),
        "{stderr}"
    );
    let denied = authctl(
        &app,
        token(&user_manager),
        &["--json", "keys", "rotate"],
        "",
    )
    .await?;
    assert_eq!(denied.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&denied.stderr)?;
    assert_eq!(error["error"]["reason"], "PERMISSION_DENIED");
    assert_eq!(error["error"]["code"], "PERMISSION_DENIED");
    // An app session's token is no management credential, whoever holds it.
    let denied = authctl(
        &app,
        token(&user_tokens.access_token),
        &["--json", "user", "get", &user_id],
        "",
    )
    .await?;
    assert_eq!(denied.status.code(), Some(1));
    assert!(denied.stdout.is_empty());
    let error: Value = serde_json::from_slice(&denied.stderr)?;
    assert_eq!(error["error"]["reason"], "MANAGEMENT_CREDENTIAL_REQUIRED");
    assert_eq!(error["error"]["code"], "PERMISSION_DENIED");
    let missing = authctl(
        &app,
        token(&admin.session_token),
        &["user", "get", "nobody@example.com"],
        "",
    )
    .await?;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8(missing.stderr)?.contains("USER_NOT_FOUND"));
    Ok(())
}

async fn authctl_reads_its_token_from_a_file(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{}\n", admin.session_token))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    let email = unique_email("file");
    stdout(
        &authctl(
            &app,
            Auth::FileFlag(&path),
            &["user", "create", "--email", &email],
            &format!("{PASSWORD}\n"),
        )
        .await?,
    )?;
    let by_env = authctl(
        &app,
        Auth::FileEnv(&path),
        &["--json", "user", "get", &email],
        "",
    )
    .await?;
    assert_eq!(json(&by_env)?["email"], email.as_str());
    assert!(
        by_env.stderr.is_empty(),
        "a private token file draws no warning"
    );

    // --token-file wins over AUTHCTL_TOKEN, which wins over AUTHCTL_TOKEN_FILE.
    let bogus = dir.path().join("bogus");
    std::fs::write(&bogus, "not-a-token\n")?;
    let bogus_path = bogus.display().to_string();
    let flag_wins = authctl(
        &app,
        Auth::Env(&admin.session_token),
        &["--token-file", &bogus_path, "user", "get", &email],
        "",
    )
    .await?;
    assert_eq!(
        flag_wins.status.code(),
        Some(1),
        "the file named by the flag is used"
    );
    assert!(String::from_utf8(flag_wins.stderr)?.contains("TOKEN_INVALID"));
    let env_wins = authctl(
        &app,
        Auth::EnvOverFileEnv(&admin.session_token, &bogus),
        &["user", "get", &email],
        "",
    )
    .await?;
    stdout(&env_wins)?;
    Ok(())
}

#[tokio::test]
async fn authctl_refuses_to_run_without_a_token_and_sends_nothing() -> TestResult {
    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let email = unique_email("never");
    let output = authctl(
        &app,
        Auth::None,
        &["user", "create", "--email", &email],
        &format!("{PASSWORD}\n"),
    )
    .await?;
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("no token") && stderr.contains("AUTHCTL_TOKEN"),
        "{stderr}"
    );

    // There is no flag that takes the token itself.
    let flag = authctl(&app, Auth::None, &["--token", "abc", "keys", "rotate"], "").await?;
    assert_eq!(flag.status.code(), Some(2));

    let missing_file = authctl(
        &app,
        Auth::FileFlag(std::path::Path::new("/nonexistent/token")),
        &["keys", "rotate"],
        "",
    )
    .await?;
    assert_eq!(missing_file.status.code(), Some(2));
    assert!(String::from_utf8(missing_file.stderr)?.contains("/nonexistent/token"));

    // The account was never created.
    let admin = admin(&app).await?;
    let lookup = client(&app)
        .get_user(with_bearer(
            &admin.access_token,
            pb::GetUserRequest {
                lookup: Some(Lookup::Email(email)),
            },
        )?)
        .await;
    assert_error(lookup, Code::NotFound, "USER_NOT_FOUND");
    Ok(())
}

#[tokio::test]
async fn authctl_says_when_the_server_cannot_be_reached() -> TestResult {
    let unused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let binary = tokio::task::spawn_blocking(binary).await??;
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary)
            .env_remove("AUTHCTL_TOKEN_FILE")
            .env("AUTHCTL_TOKEN", "some-token")
            .env("AUTHCTL_SERVER", format!("http://{unused}"))
            .args(["sessions", "list", "u1"])
            .output()
    })
    .await??;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.starts_with("authctl: UNAVAILABLE: cannot connect to "),
        "{stderr}"
    );
    Ok(())
}

/// `export AUTHCTL_TOKEN=$(authctl login --email ...)` (README, "Administration"): the password
/// from standard input, only the token on stdout, and that token is a management session's.
async fn authctl_login_prints_a_management_token_the_other_commands_accept(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;

    let login = authctl(
        &app,
        Auth::None,
        &["login", "--email", &admin.email],
        &format!("{PASSWORD}\n"),
    )
    .await?;
    let printed = stdout(&login)?;
    let token = printed.trim();
    assert_eq!(printed.lines().count(), 1, "{printed}");
    assert!(!printed.contains(PASSWORD));

    let user = json(
        &authctl(
            &app,
            Auth::Env(token),
            &["--json", "user", "get", &admin.email],
            "",
        )
        .await?,
    )?;
    assert_eq!(user["userId"], admin.user_id.as_str());
    // A management credential: the apps' Verify refuses it.
    assert_error(
        app.verify(token).await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );

    // `--json` gives the session too; the token is the same kind.
    let described = json(
        &authctl(
            &app,
            Auth::None,
            &["--json", "login", "--email", &admin.email],
            &format!("{PASSWORD}\n"),
        )
        .await?,
    )?;
    assert_eq!(described["userId"], admin.user_id.as_str());
    assert!(
        described["sessionToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty() && t != token)
    );

    // A wrong password: the reason on stderr, nothing on stdout, a failing exit.
    let refused = authctl(
        &app,
        Auth::None,
        &["login", "--email", &admin.email],
        "not the password\n",
    )
    .await?;
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    let stderr = String::from_utf8(refused.stderr)?;
    assert!(stderr.contains("INVALID_CREDENTIALS"), "{stderr}");
    Ok(())
}

async fn authctl_creates_lists_rotates_and_disables_service_clients(
    backend: Backend,
) -> TestResult {
    use crate::services::{service_token, unique_name, verify_for};

    let app = TestApp::spawn(&backend).await?;
    let token = admin(&app).await?.session_token;
    let name = unique_name("cli");
    let created = json(
        &authctl(
            &app,
            Auth::Env(&token),
            &[
                "service",
                "create",
                &name,
                "--audience",
                "inventory",
                "--exchange-audience",
                "payments",
                "--json",
            ],
            "",
        )
        .await?,
    )?;
    assert_eq!(created["clientId"], name.as_str());
    let secret = created["clientSecret"]
        .as_str()
        .ok_or("no secret")?
        .to_owned();
    assert_eq!(secret.len(), 43);
    let issued = service_token(&app, &name, &secret, "inventory").await?;

    let listed = stdout(&authctl(&app, Auth::Env(&token), &["service", "list"], "").await?)?;
    assert!(
        listed.contains(&name) && listed.contains("payments"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "{listed}");

    let rotated = json(
        &authctl(
            &app,
            Auth::Env(&token),
            &["service", "rotate-secret", &name, "--json"],
            "",
        )
        .await?,
    )?;
    let new_secret = rotated["clientSecret"]
        .as_str()
        .ok_or("no secret")?
        .to_owned();
    assert_ne!(new_secret, secret);
    // No overlap asked for: the old secret's token is refused at once.
    assert_error(
        verify_for(&app, &issued.access_token, "inventory").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let fresh = service_token(&app, &name, &new_secret, "inventory").await?;

    let disabled =
        stdout(&authctl(&app, Auth::Env(&token), &["service", "disable", &name], "").await?)?;
    assert!(disabled.contains("disabled service client"), "{disabled}");
    assert_error(
        verify_for(&app, &fresh.access_token, "inventory").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn authctl_lists_accounts_sets_a_password_from_stdin_and_deletes_an_account(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let token = || Auth::Env(&admin.session_token);
    for (email, role) in [("ann@ctl.test", "billing"), ("bob@ctl.test", "support")] {
        crate::account_admin::create_user(&app, &admin.access_token, email, &[role]).await?;
    }

    // A page of one, then the rest; the table names the next page.
    let first = stdout(&authctl(&app, token(), &["user", "list", "--page-size", "1"], "").await?)?;
    let lines: Vec<&str> = first.lines().collect();
    assert!(
        lines[0].starts_with("USER") && lines[0].contains("EMAIL"),
        "{first}"
    );
    assert!(lines[1].contains(&admin.email), "{first}");
    let more = lines
        .last()
        .and_then(|line| line.strip_prefix("more: authctl user list --page-token "))
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or(format!("no next page in {first}"))?;
    let all = json(
        &authctl(
            &app,
            token(),
            &["--json", "user", "list", "--page-size", "1", "--all"],
            "",
        )
        .await?,
    )?;
    let emails: Vec<&str> = all["users"]
        .as_array()
        .ok_or("users")?
        .iter()
        .filter_map(|user| user["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        [admin.email.as_str(), "ann@ctl.test", "bob@ctl.test"]
    );
    let rest = json(
        &authctl(
            &app,
            token(),
            &[
                "--json",
                "user",
                "list",
                "--page-token",
                more,
                "--role",
                "support",
            ],
            "",
        )
        .await?,
    )?;
    assert_eq!(rest["users"][0]["email"], "bob@ctl.test");
    assert_eq!(rest["nextPageToken"], "");

    // The new password comes from standard input, and ends ann's sessions.
    let ann = token_pair(&app.login("ann@ctl.test", CredentialKind::Tokens).await?)?;
    let new_password = "ann's brand new passphrase";
    let set = stdout(
        &authctl(
            &app,
            token(),
            &["user", "set-password", "ann@ctl.test"],
            &format!("{new_password}\n"),
        )
        .await?,
    )?;
    assert!(
        set.starts_with("set a new password for user ") && set.ends_with("ended 1 live session\n"),
        "{set}"
    );
    assert!(app.verify(&ann.access_token).await.is_err());
    let login = app
        .auth
        .clone()
        .login(pb::LoginRequest {
            email: "ann@ctl.test".into(),
            password: new_password.into(),
            kind: CredentialKind::Session.into(),
            management: false,
        })
        .await;
    assert!(login.is_ok(), "{login:?}");
    let no_password = authctl(&app, token(), &["user", "set-password", "ann@ctl.test"], "").await?;
    assert_eq!(no_password.status.code(), Some(2));

    let deleted = json(
        &authctl(
            &app,
            token(),
            &["--json", "user", "delete", "ann@ctl.test"],
            "",
        )
        .await?,
    )?;
    assert_eq!(deleted["newlyDeleted"], true);
    assert_eq!(deleted["revokedCount"], 1);
    let gone = authctl(&app, token(), &["user", "get", "ann@ctl.test"], "").await?;
    assert!(String::from_utf8(gone.stderr)?.contains("USER_NOT_FOUND"));
    let by_id = deleted["userId"].as_str().ok_or("userId")?;
    let gone = authctl(&app, token(), &["user", "get", by_id], "").await?;
    assert!(String::from_utf8(gone.stderr)?.starts_with("authctl: USER_DELETED: "));
    Ok(())
}
