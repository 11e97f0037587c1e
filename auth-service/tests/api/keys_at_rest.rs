//! Signing keys encrypted at rest (`AUTH_KEY_ENCRYPTION_KEY_FILE`): the database holds no usable
//! private key, a wrong or missing key file stops the start with a clear error and changes no
//! row, plaintext rows are sealed at start, and `keys rewrap` changes the wrapping key.

use std::{path::PathBuf, process::Command};

use auth_service::config::Settings;

use crate::helpers::{
    Backend, TestApp, TestDatabase, TestResult, on_both_backends, test_settings, unique_email,
};

on_both_backends!(
    signing_keys_are_sealed_at_rest_and_a_wrong_or_missing_key_file_stops_the_start,
    plaintext_keys_are_sealed_at_start_and_rewrap_moves_them_to_a_new_key,
);

type Error = Box<dyn std::error::Error + Send + Sync>;

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");
/// DER of the Ed25519 algorithm identifier (RFC 8410), in every PKCS#8 Ed25519 document.
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// A key file in the test's data directory, in one of the accepted forms.
fn key_file(database: &TestDatabase, name: &str, contents: &[u8]) -> Result<PathBuf, Error> {
    let dir = database
        .env()
        .into_iter()
        .find(|(name, _)| *name == "AUTH_DATA_DIR")
        .map(|(_, dir)| PathBuf::from(dir))
        .ok_or("no data dir")?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, contents)?;
    Ok(path)
}

/// The private halves exactly as the database holds them, read with sqlx (not the store).
async fn stored_private_keys(database: &TestDatabase) -> Result<Vec<Vec<u8>>, Error> {
    const SQL: &str =
        "SELECT private_key FROM signing_keys WHERE private_key IS NOT NULL ORDER BY seq";
    let env: std::collections::HashMap<_, _> = database.env().into_iter().collect();
    let rows: Vec<Vec<u8>> = match env.get("DATABASE_URL") {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await?;
            let rows = sqlx::query_scalar(SQL).fetch_all(&pool).await?;
            pool.close().await;
            rows
        }
        None => {
            let dir = env.get("AUTH_DATA_DIR").ok_or("no data dir")?;
            let url = format!("sqlite:{dir}/auth.db");
            let pool = sqlx::SqlitePool::connect(&url).await?;
            let rows = sqlx::query_scalar(SQL).fetch_all(&pool).await?;
            pool.close().await;
            rows
        }
    };
    assert!(!rows.is_empty(), "no private key stored");
    Ok(rows)
}

fn assert_sealed(rows: &[Vec<u8>]) {
    for row in rows {
        assert!(row.starts_with(b"AKS1"), "a row is not sealed");
        assert!(
            !row.windows(ED25519_OID.len()).any(|w| w == ED25519_OID),
            "a PKCS#8 Ed25519 document is readable in the database"
        );
    }
}

fn with_key(database: &TestDatabase, key: Option<&PathBuf>) -> Settings {
    let mut settings = test_settings(database);
    settings.storage.key_encryption_key_file = key.cloned();
    settings
}

async fn start_error(database: &TestDatabase, key: Option<&PathBuf>) -> Result<String, Error> {
    match TestApp::start(database.clone(), with_key(database, key)).await {
        Ok(_) => Err("the server started".into()),
        Err(error) => Ok(error.to_string()),
    }
}

async fn signing_keys_are_sealed_at_rest_and_a_wrong_or_missing_key_file_stops_the_start(
    backend: Backend,
) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    // `openssl rand -base64 32`, as a mounted secret would hold it.
    let right = key_file(
        &database,
        "kek",
        b"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n",
    )?;
    let wrong = key_file(&database, "other", &[7u8; 32])?;
    let app = TestApp::start(database.clone(), with_key(&database, Some(&right))).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("sealed")).await?;
    let sealed = stored_private_keys(&database).await?;
    assert_sealed(&sealed);
    app.verify(&tokens.access_token).await?;
    drop(app);

    let error = start_error(&database, Some(&wrong)).await?;
    assert!(
        error.contains("AUTH_KEY_ENCRYPTION_KEY_FILE") && error.contains("no row was changed"),
        "{error}"
    );
    let error = start_error(&database, None).await?;
    assert!(
        error.contains("AUTH_KEY_ENCRYPTION_KEY_FILE is not set"),
        "{error}"
    );
    let malformed = key_file(&database, "short", b"not a key")?;
    let error = start_error(&database, Some(&malformed)).await?;
    assert!(error.contains("expected a 256-bit key"), "{error}");
    assert_eq!(
        stored_private_keys(&database).await?,
        sealed,
        "a failed start changed a row"
    );

    let app = TestApp::start(database.clone(), with_key(&database, Some(&right))).await?;
    app.verify(&tokens.access_token).await?;
    app.refresh(&tokens.refresh_token).await?;
    Ok(())
}

async fn plaintext_keys_are_sealed_at_start_and_rewrap_moves_them_to_a_new_key(
    backend: Backend,
) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    let app = TestApp::start(database.clone(), with_key(&database, None)).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("plain")).await?;
    let plaintext = stored_private_keys(&database).await?;
    assert!(plaintext.iter().all(|row| row.starts_with(&[0x30])));
    drop(app);

    let first = key_file(&database, "first", "ab".repeat(32).as_bytes())?;
    let app = TestApp::start(database.clone(), with_key(&database, Some(&first))).await?;
    assert_sealed(&stored_private_keys(&database).await?);
    app.verify(&tokens.access_token).await?;
    drop(app);

    let second = key_file(&database, "second", &[9u8; 32])?;
    let output = Command::new(BINARY)
        .envs(database.env())
        .env("RUST_LOG", "warn")
        .env("AUTH_KEY_ENCRYPTION_KEY_FILE", &first)
        .args(["keys", "rewrap", "--new-key-file"])
        .arg(&second)
        .output()?;
    assert!(output.status.success(), "rewrap failed: {output:?}");
    assert!(String::from_utf8(output.stdout)?.contains("re-sealed 1 signing keys"));
    assert_sealed(&stored_private_keys(&database).await?);

    let error = start_error(&database, Some(&first)).await?;
    assert!(error.contains("AUTH_KEY_ENCRYPTION_KEY_FILE"), "{error}");
    let app = TestApp::start(database.clone(), with_key(&database, Some(&second))).await?;
    app.verify(&tokens.access_token).await?;
    app.refresh(&tokens.refresh_token).await?;
    Ok(())
}
