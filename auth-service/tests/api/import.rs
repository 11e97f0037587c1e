//! Accounts brought over from an Express app: the fixture `tests/fixtures/bcryptjs/users.jsonl`
//! holds hashes made by bcryptjs (the library of the Express reference peer; `generate.js`
//! there regenerates it), imported through `ImportUsers`, logged into with their passwords,
//! upgraded to argon2id on the first login; and a 10,000-account import through `authctl user
//! import`, run twice.

use std::collections::HashMap;

use auth_api::v1::{self as pb, ImportOutcome};
use serde_json::Value;
use tonic::Code;

use crate::admin::{BoxError, admin, client, login_with};
use crate::authctl::{Auth, authctl, stdout};
use crate::helpers::{Backend, TestApp, TestResult, assert_error, on_both_backends, with_bearer};

on_both_backends!(
    accounts_hashed_by_bcryptjs_import_log_in_and_are_upgraded_to_argon2id,
    ten_thousand_accounts_import_in_batches_and_importing_them_again_changes_nothing,
);

const USERS: &str = include_str!("../fixtures/bcryptjs/users.jsonl");
const PASSWORDS: &str = include_str!("../fixtures/bcryptjs/passwords.json");

/// The fixture's lines as `ImportedUser`s.
fn fixture() -> Result<Vec<pb::ImportedUser>, BoxError> {
    USERS
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line)?;
            Ok(pb::ImportedUser {
                email: row["email"].as_str().ok_or("email")?.to_owned(),
                user_id: row["id"].as_str().unwrap_or_default().to_owned(),
                roles: serde_json::from_value(row["roles"].clone())?,
                password_hash: row["password_hash"].as_str().ok_or("hash")?.to_owned(),
            })
        })
        .collect()
}

async fn import(
    app: &TestApp,
    token: &str,
    users: Vec<pb::ImportedUser>,
) -> Result<Vec<pb::ImportResult>, BoxError> {
    let request = with_bearer(token, pb::ImportUsersRequest { users })?;
    Ok(client(app)
        .import_users(request)
        .await?
        .into_inner()
        .results)
}

async fn accounts_hashed_by_bcryptjs_import_log_in_and_are_upgraded_to_argon2id(
    backend: Backend,
) -> TestResult {
    // Room for the 1001-row request below (the default limit is 64 KiB).
    let app =
        TestApp::spawn_with(&backend, |settings| settings.max_request_bytes = 1 << 20).await?;
    let admin = admin(&app).await?;
    let users = fixture()?;
    let passwords: HashMap<String, String> = serde_json::from_str(PASSWORDS)?;
    let results = import(&app, &admin.access_token, users.clone()).await?;
    assert_eq!(results.len(), users.len());
    let mut ids = HashMap::new();
    for (user, result) in users.iter().zip(&results) {
        assert_eq!(result.outcome(), ImportOutcome::Imported, "{result:?}");
        // The exporting app's id is kept when given.
        if !user.user_id.is_empty() {
            assert_eq!(result.user_id, user.user_id);
        }
        ids.insert(user.email.clone(), result.user_id.clone());
    }
    let store = app.database.store().await?;
    let prefixes: Vec<String> = users
        .iter()
        .map(|user| user.password_hash[..4].to_owned())
        .collect();
    assert!(
        ["$2a$", "$2b$", "$2y$"]
            .iter()
            .all(|p| prefixes.iter().any(|q| q == p))
    );

    // Every account logs in with its password (bcrypt checked as stored), and the login
    // replaced the bcrypt hash with argon2id; the next login checks that one.
    for user in &users {
        let password = &passwords[&user.email];
        let tokens = login_with(&app, &user.email, password).await?;
        let principal = app
            .verify(&crate::helpers::token_pair(&tokens)?.access_token)
            .await?
            .principal
            .ok_or("principal")?;
        assert_eq!(principal.roles, user.roles);
        let stored = store
            .find_user(&ids[&user.email])
            .await?
            .ok_or("imported user")?;
        assert!(
            stored.password_hash.starts_with("$argon2id$"),
            "{:?}",
            &stored.password_hash[..10]
        );
    }
    // A wrong password is refused, before and after the upgrade, like any other.
    assert_error(
        login_with(&app, "alice@example.com", "alice in wonderlan").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    login_with(&app, "BOB@example.com", &passwords["Bob@Example.com"]).await?;

    // Importing again skips every row; rows that cannot be accounts say why.
    let again = import(&app, &admin.access_token, users.clone()).await?;
    assert!(
        again
            .iter()
            .all(|r| r.outcome() == ImportOutcome::Duplicate),
        "{again:?}"
    );
    let bad = |email: &str, id: &str, hash: &str| pb::ImportedUser {
        email: email.into(),
        user_id: id.into(),
        roles: vec![],
        password_hash: hash.into(),
    };
    let bcrypt = &users[0].password_hash;
    let refused = import(
        &app,
        &admin.access_token,
        vec![
            bad("md5@example.com", "", "5f4dcc3b5aa765d61d8327deb882cf99"),
            bad("not an email", "", bcrypt),
            bad("taken@example.com", "1", bcrypt),
            bad("slash@example.com", "a/b", bcrypt),
            bad("fine@example.com", "", bcrypt),
        ],
    )
    .await?;
    let outcomes: Vec<(ImportOutcome, &str)> = refused
        .iter()
        .map(|r| (r.outcome(), r.reason.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                ImportOutcome::Refused,
                "unsupported password hash (accepted: bcrypt, argon2 PHC strings)"
            ),
            (ImportOutcome::Refused, "invalid email address"),
            (
                ImportOutcome::Refused,
                "the id belongs to another account (ids are never reused)"
            ),
            (
                ImportOutcome::Refused,
                "the id must be 1 to 64 letters, digits, '-' or '_'"
            ),
            (ImportOutcome::Imported, ""),
        ]
    );
    // No more than 1000 rows a call.
    let too_many = import(
        &app,
        &admin.access_token,
        vec![bad("x@example.com", "", bcrypt); 1001],
    )
    .await;
    let status = too_many.err().ok_or("1001 rows accepted")?;
    let status = status
        .downcast::<tonic::Status>()
        .map_err(|_| "not a status")?;
    assert_error::<()>(Err(*status), Code::InvalidArgument, "INVALID_ARGUMENT");
    Ok(())
}

async fn ten_thousand_accounts_import_in_batches_and_importing_them_again_changes_nothing(
    backend: Backend,
) -> TestResult {
    const ACCOUNTS: usize = 10_000;
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let users = fixture()?;
    let passwords: HashMap<String, String> = serde_json::from_str(PASSWORDS)?;
    // The fixture's hashes, over and over (each account's password is its hash's).
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("users.jsonl");
    let mut lines = String::new();
    for index in 0..ACCOUNTS {
        let source = &users[index % users.len()];
        let mut row = serde_json::json!({
            "email": format!("user{index}@bulk.test"),
            "roles": ["member"],
            "password_hash": source.password_hash,
        });
        if index % 2 == 0 {
            row["id"] = Value::from(index);
        }
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    // Two lines that are no accounts, reported by line number.
    lines.push_str("{\"email\": \"broken@bulk.test\"}\n\nnot json\n");
    std::fs::write(&file, lines)?;
    let path = file.to_string_lossy().into_owned();

    let started = std::time::Instant::now();
    let first = authctl(
        &app,
        Auth::Env(&admin.session_token),
        &["user", "import", &path],
        "",
    )
    .await?;
    let elapsed = started.elapsed();
    let summary = stdout(&first)?;
    assert!(
        summary.starts_with("10002 lines: imported 10000, skipped 0 duplicates, refused 2"),
        "{summary}"
    );
    assert!(
        summary.contains("line 10001: refused: no \"password_hash\" string"),
        "{summary}"
    );
    assert!(
        summary.contains("line 10003: refused: not a JSON object"),
        "{summary}"
    );
    // One progress line per batch (at most 500 lines and 48 KiB each), the last one complete.
    let progress = String::from_utf8(first.stderr.clone())?;
    let batches = progress
        .lines()
        .filter(|line| line.starts_with("imported "))
        .count();
    assert!((21..=40).contains(&batches), "{progress}");
    assert_eq!(
        progress.lines().last(),
        Some("imported 10002/10002 lines"),
        "{progress}"
    );
    eprintln!("imported {ACCOUNTS} accounts through authctl in {elapsed:?}");

    let second = authctl(
        &app,
        Auth::Env(&admin.session_token),
        &["user", "import", &path, "--json"],
        "",
    )
    .await?;
    let summary: Value = serde_json::from_str(&stdout(&second)?)?;
    assert_eq!(summary["imported"], 0);
    assert_eq!(summary["duplicates"], ACCOUNTS);
    assert_eq!(summary["refused"].as_array().map(Vec::len), Some(2));

    // Every account is there once; one of them logs in with the fixture's password.
    let mut listed = 0;
    let mut request = pb::ListUsersRequest {
        page_size: 500,
        role: "member".into(),
        ..Default::default()
    };
    loop {
        let page = client(&app)
            .list_users(with_bearer(&admin.access_token, request.clone())?)
            .await?
            .into_inner();
        listed += page.users.len();
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(listed, ACCOUNTS);
    let index = 7;
    let source = &users[index % users.len()];
    login_with(
        &app,
        &format!("user{index}@bulk.test"),
        &passwords[&source.email],
    )
    .await?;
    Ok(())
}
