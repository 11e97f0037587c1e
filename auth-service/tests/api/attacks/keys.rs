//! Signing keys (issue 12 item 5): the rotation asked for last wins, a compromised key is
//! distrusted at once everywhere, and a retired key's private half does not outlive its tokens.

use std::time::Duration;

use auth_api::{
    VerifyError,
    v1::{self as pb, revocation_event::Event},
};
use tonic::{Code, Status};

use crate::{
    admin::{Admin, admin, client, jwks_kids},
    helpers::{
        Backend, TestApp, TestResult, assert_error, local_verifier, on_both_backends, unique_email,
        wait_until_rejected, with_bearer,
    },
};

on_both_backends!(
    a_slow_rotation_asked_for_first_never_signs_after_a_faster_one_asked_for_later,
    a_revoked_key_is_distrusted_at_once_by_verify_and_local_verifiers,
    a_retired_private_key_is_erased_once_its_last_token_has_expired,
    the_offline_keys_revoke_command_is_picked_up_by_a_running_server,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn kid_of(token: &str) -> Result<String, BoxError> {
    Ok(jsonwebtoken::decode_header(token)?.kid.ok_or("no kid")?)
}

// The admin's session token, not its access token: the erasure test's tokens live 1 s.
async fn rotate(app: &TestApp, admin: &Admin, seconds: i64) -> Result<String, BoxError> {
    let request = with_bearer(
        &admin.session_token,
        pb::RotateSigningKeyRequest {
            activate_in: Some(prost_types::Duration { seconds, nanos: 0 }),
        },
    )?;
    Ok(client(app)
        .rotate_signing_key(request)
        .await?
        .into_inner()
        .kid)
}

async fn revoke(
    app: &TestApp,
    admin: &Admin,
    kid: &str,
) -> Result<pb::RevokeSigningKeyResponse, Status> {
    let request = with_bearer(
        &admin.session_token,
        pb::RevokeSigningKeyRequest { kid: kid.into() },
    )
    .map_err(|error| Status::internal(error.to_string()))?;
    Ok(client(app).revoke_signing_key(request).await?.into_inner())
}

/// Asks which key signs now, by refreshing a session's tokens (cheaper than a login, and not
/// throttled per address).
struct SignerProbe {
    refresh_token: String,
}

impl SignerProbe {
    async fn new(app: &TestApp) -> Result<Self, BoxError> {
        let (_, tokens) = app.user_with_tokens(&unique_email("probe")).await?;
        Ok(Self {
            refresh_token: tokens.refresh_token,
        })
    }

    async fn kid(&mut self, app: &TestApp) -> Result<String, BoxError> {
        let tokens = app.refresh(&self.refresh_token).await?;
        self.refresh_token = tokens.refresh_token;
        kid_of(&tokens.access_token)
    }
}

async fn a_slow_rotation_asked_for_first_never_signs_after_a_faster_one_asked_for_later(
    backend: Backend,
) -> TestResult {
    // Seen in the field: `keys rotate --activate-in 20s`, then `--activate-in 3s`, ended with
    // the 20 s key signing. The same with shorter delays. Refreshes count against the
    // per-address throttle: the probe refreshes a few dozen times.
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.login_rate_per_address = 1_000;
    })
    .await?;
    let admin = admin(&app).await?;
    let mut probe = SignerProbe::new(&app).await?;
    let first = probe.kid(&app).await?;
    let asked = tokio::time::Instant::now();
    let slow = rotate(&app, &admin, 5).await?;
    let fast = rotate(&app, &admin, 1).await?;

    // The fast key takes over after about a second...
    let mut signer = first.clone();
    while signer != fast && asked.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        signer = probe.kid(&app).await?;
    }
    assert_eq!(signer, fast, "the rotation asked for last signs");
    // ...and keeps signing past the instant the slow key was scheduled for.
    while asked.elapsed() < Duration::from_secs(7) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now_signing = probe.kid(&app).await?;
        assert_ne!(now_signing, slow, "a superseded key signed");
        assert_eq!(now_signing, fast);
    }
    // The superseded key left the JWKS and its private half is gone.
    assert!(!jwks_kids(&app).await?.contains(&slow));
    let stored = app.database.store().await?.list_signing_keys().await?;
    let record = stored
        .iter()
        .find(|k| k.kid == slow)
        .ok_or("slow key row")?;
    assert!(
        record.private_pkcs8.is_none(),
        "superseded private key kept"
    );
    Ok(())
}

async fn a_revoked_key_is_distrusted_at_once_by_verify_and_local_verifiers(
    backend: Backend,
) -> TestResult {
    // No periodic reload: nothing but the revocation itself may teach the server and the feed.
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.key_reload_interval = Duration::from_secs(3600);
    })
    .await?;
    let admin = admin(&app).await?;
    let mut probe = SignerProbe::new(&app).await?;
    let (_, before) = app.user_with_tokens(&unique_email("compromised")).await?;
    let compromised = kid_of(&before.access_token)?;
    let verifier = local_verifier(&app, "api", |_| {}).await?;
    // Both have checked (and cached) the token before the key is revoked.
    app.verify(&before.access_token).await?;
    verifier.verify_token(&before.access_token).await?;

    let mut feed = app
        .keys
        .clone()
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await?
        .into_inner();

    let revoked = revoke(&app, &admin, &compromised).await?;
    assert!(revoked.newly_revoked);
    assert_ne!(revoked.successor_kid, compromised);

    assert!(!jwks_kids(&app).await?.contains(&compromised));
    assert_error(
        app.verify(&before.access_token).await,
        Code::Unauthenticated,
        "SIGNING_KEY_REVOKED",
    );
    let refused =
        wait_until_rejected(&verifier, &before.access_token, Duration::from_secs(2)).await?;
    assert!(matches!(refused, VerifyError::Invalid), "{refused:?}");

    // The feed said so, live, and says so in every later snapshot (a verifier must refuse the
    // key even if a replica that has not reloaded yet still lists it in its JWKS).
    assert!(announces_revoked(&mut feed, &compromised).await?);
    let mut later_feed = app
        .keys
        .clone()
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await?
        .into_inner();
    assert!(announces_revoked(&mut later_feed, &compromised).await?);

    // A new key signs at once, and its tokens are accepted everywhere.
    let (_, after) = app.user_with_tokens(&unique_email("after")).await?;
    assert_eq!(kid_of(&after.access_token)?, revoked.successor_kid);
    app.verify(&after.access_token).await?;
    verifier.verify_token(&after.access_token).await?;

    // A verifier that connects later refuses the key too.
    let late = local_verifier(&app, "api", |_| {}).await?;
    assert!(late.verify_token(&before.access_token).await.is_err());

    // The private half is erased at once.
    let stored = app.database.store().await?.list_signing_keys().await?;
    let record = stored
        .iter()
        .find(|k| k.kid == compromised)
        .ok_or("key row")?;
    assert!(record.private_pkcs8.is_none() && record.revoked_at.is_some());

    // Again: nothing changes. Unknown: NOT_FOUND.
    let again = revoke(&app, &admin, &compromised).await?;
    assert!(!again.newly_revoked && again.successor_kid.is_empty());
    assert_eq!(probe.kid(&app).await?, revoked.successor_kid);
    assert_error(
        revoke(&app, &admin, "AAAAAAAA").await,
        Code::NotFound,
        "SIGNING_KEY_NOT_FOUND",
    );
    assert_error(
        revoke(&app, &admin, "not a kid").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    Ok(())
}

/// Whether `feed` carries `SigningKeyRevoked { kid }` within two seconds.
async fn announces_revoked(
    feed: &mut tonic::Streaming<pb::RevocationEvent>,
    kid: &str,
) -> Result<bool, BoxError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(message) = tokio::time::timeout_at(deadline, feed.message()).await {
        let Some(event) = message? else { break };
        if matches!(&event.event, Some(Event::SigningKeyRevoked(revoked)) if revoked.kid == kid) {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn a_retired_private_key_is_erased_once_its_last_token_has_expired(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.access_token_ttl = Duration::from_secs(1);
        settings.token_leeway = Duration::from_secs(1);
    })
    .await?;
    let admin = admin(&app).await?;
    let old = kid_of(&admin.access_token)?;
    let store = app.database.store().await?;
    let private_of = |kid: String| {
        let store = store.clone();
        async move {
            let keys = store.list_signing_keys().await?;
            let key = keys.into_iter().find(|k| k.kid == kid).ok_or("key row")?;
            Ok::<_, BoxError>(key.private_pkcs8)
        }
    };
    let rotated = tokio::time::Instant::now();
    let new = rotate(&app, &admin, 0).await?;
    // Tokens it signed live 2 s more (TTL plus leeway): until then it is kept and published.
    assert!(private_of(old.clone()).await?.is_some());
    assert!(jwks_kids(&app).await?.contains(&old));

    // The server erases it at a key reload (every second in tests) after that.
    while private_of(old.clone()).await?.is_some() {
        assert!(
            rotated.elapsed() < Duration::from_secs(6),
            "the retired private key outlived its tokens"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        rotated.elapsed() >= Duration::from_secs(2),
        "erased too early"
    );
    assert!(!jwks_kids(&app).await?.contains(&old));
    // The signing key is untouched.
    assert!(private_of(new.clone()).await?.is_some());
    let (_, fresh) = app.user_with_tokens(&unique_email("still-signing")).await?;
    assert_eq!(kid_of(&fresh.access_token)?, new);
    Ok(())
}

async fn the_offline_keys_revoke_command_is_picked_up_by_a_running_server(
    backend: Backend,
) -> TestResult {
    // `auth-service keys revoke KID` against the database, while a server runs on it.
    let app = TestApp::spawn(&backend).await?;
    let (_, before) = app.user_with_tokens(&unique_email("offline")).await?;
    let compromised = kid_of(&before.access_token)?;
    let command = auth_service::config::KeysCommand::Revoke {
        kid: compromised.clone(),
    };
    let said = auth_service::commands::keys(&app.settings, command).await?;
    assert!(
        said.starts_with(&format!("revoked key {compromised}; key ")),
        "{said}"
    );

    // The server re-reads its keys every second in tests (AUTH_KEY_RELOAD_INTERVAL).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while app.verify(&before.access_token).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still trusted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_error(
        app.verify(&before.access_token).await,
        Code::Unauthenticated,
        "SIGNING_KEY_REVOKED",
    );
    assert!(!jwks_kids(&app).await?.contains(&compromised));
    let (_, after) = app.user_with_tokens(&unique_email("offline-after")).await?;
    assert_ne!(kid_of(&after.access_token)?, compromised);
    app.verify(&after.access_token).await?;

    let unknown = auth_service::config::KeysCommand::Revoke {
        kid: "AAAAAAAA".into(),
    };
    assert!(
        auth_service::commands::keys(&app.settings, unknown)
            .await
            .is_err()
    );
    Ok(())
}
