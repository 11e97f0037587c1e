use std::time::Duration;

use auth_api::v1::GetJwksRequest;
use auth_service::{app::Components, domain::Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, TestResult, on_both_backends, token_pair, unique_email};

on_both_backends!(
    a_service_can_verify_access_tokens_locally_with_the_published_jwks,
    a_rotation_made_by_another_process_is_picked_up_without_a_restart,
    a_rotated_in_key_is_published_before_it_signs,
    a_token_signed_by_a_key_another_process_just_published_verifies_at_once,
    the_key_rotates_on_schedule_and_old_tokens_still_verify,
);

async fn jwks(app: &TestApp) -> Result<JwkSet, Box<dyn std::error::Error + Send + Sync>> {
    let json = app
        .keys
        .clone()
        .get_jwks(GetJwksRequest {})
        .await?
        .into_inner()
        .jwks_json;
    Ok(serde_json::from_str(&json)?)
}

fn kid_of(token: &str) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    Ok(jsonwebtoken::decode_header(token)?.kid.ok_or("no kid")?)
}

async fn a_service_can_verify_access_tokens_locally_with_the_published_jwks(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("jwks")).await?;
    let set = jwks(&app).await?;
    let raw: Value = serde_json::to_value(&set)?;
    assert!(
        raw.to_string().find("\"d\"").is_none(),
        "private key material published"
    );

    let jwk = set
        .find(&kid_of(&tokens.access_token)?)
        .ok_or("signing key not in the JWKS")?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["api"]);
    validation.set_issuer(&["auth"]);
    let claims = jsonwebtoken::decode::<Value>(
        &tokens.access_token,
        &DecodingKey::from_jwk(jwk)?,
        &validation,
    )?
    .claims;
    assert_eq!(claims["sid"], login.session_id.as_str());
    Ok(())
}

async fn a_rotation_made_by_another_process_is_picked_up_without_a_restart(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("rotation");
    let (_, before) = app.user_with_tokens(&email).await?;
    let old_kid = kid_of(&before.access_token)?;

    // What `auth-service keys rotate --activate-in 0s` does, from outside the running server.
    let admin = Components::open(&app.settings).await?;
    let new_kid = admin
        .keys
        .rotate(Timestamp::now(), Duration::ZERO, Duration::from_secs(900))
        .await?;
    assert_ne!(new_kid, old_kid);

    // The server re-reads its keys every second in tests (AUTH_KEY_RELOAD_INTERVAL).
    let mut signed_with = old_kid.clone();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tokens = token_pair(
            &app.login(&email, auth_api::v1::CredentialKind::Tokens)
                .await?,
        )?;
        signed_with = kid_of(&tokens.access_token)?;
        if signed_with == new_kid {
            app.verify(&tokens.access_token).await?;
            break;
        }
    }
    assert_eq!(
        signed_with, new_kid,
        "new logins are signed with the rotated-in key"
    );
    // Tokens signed before the rotation stay valid until they expire.
    app.verify(&before.access_token).await?;
    let kids: Vec<String> = jwks(&app)
        .await?
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    Ok(())
}

async fn a_rotated_in_key_is_published_before_it_signs(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("ahead");
    let (_, before) = app.user_with_tokens(&email).await?;
    let admin = Components::open(&app.settings).await?;
    let next_kid = admin
        .keys
        .rotate(
            Timestamp::now(),
            Duration::from_secs(3600),
            Duration::from_secs(900),
        )
        .await?;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kids: Vec<String> = jwks(&app)
        .await?
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert!(
        kids.contains(&next_kid),
        "the next key is published ahead: {kids:?}"
    );
    let after = token_pair(
        &app.login(&email, auth_api::v1::CredentialKind::Tokens)
            .await?,
    )?;
    assert_eq!(
        kid_of(&after.access_token)?,
        kid_of(&before.access_token)?,
        "but does not sign yet"
    );
    Ok(())
}

async fn a_token_signed_by_a_key_another_process_just_published_verifies_at_once(
    backend: Backend,
) -> TestResult {
    // No periodic reload during the test: only meeting the unknown `kid` can teach the server.
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.key_reload_interval = Duration::from_secs(3600);
    })
    .await?;
    let email = unique_email("unknown-kid");
    let (_, before) = app.user_with_tokens(&email).await?;

    // Another replica rotates a key in that signs at once, and logs the user in with it.
    let other = Components::open(&app.settings).await?;
    let new_kid = other
        .keys
        .rotate(Timestamp::now(), Duration::ZERO, Duration::from_secs(900))
        .await?;
    let outcome = other
        .core
        .login(
            &email,
            crate::helpers::PASSWORD.into(),
            auth_service::domain::model::SessionKind::Tokens.into(),
            auth_service::domain::model::ClientInfo::default(),
            Timestamp::now(),
        )
        .await?;
    let auth_service::domain::model::Credential::Tokens(tokens) = outcome.credential else {
        return Err("a token pair".into());
    };
    assert_eq!(kid_of(&tokens.access_token)?, new_kid);
    assert_ne!(kid_of(&before.access_token)?, new_kid);
    app.verify(&tokens.access_token).await?;
    Ok(())
}

/// `AUTH_KEY_ROTATION_PERIOD`: with nobody asking, a new key is published, signs after the
/// activation delay, and the tokens of the old key keep verifying.
async fn the_key_rotates_on_schedule_and_old_tokens_still_verify(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.key_rotation_period = Duration::from_secs(2);
        settings.key_activation_delay = Duration::from_secs(1);
        settings.key_reload_interval = Duration::from_secs(1);
    })
    .await?;
    let email = unique_email("scheduled");
    let (_, before) = app.user_with_tokens(&email).await?;
    let first_kid = kid_of(&before.access_token)?;

    // Refreshes of a second session show which key signs now (without piling up sessions).
    let mut current = token_pair(
        &app.login(&email, auth_api::v1::CredentialKind::Tokens)
            .await?,
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let after = loop {
        current = app.refresh(&current.refresh_token).await?;
        if kid_of(&current.access_token)? != first_kid {
            break current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled rotation within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let kids: Vec<String> = jwks(&app)
        .await?
        .keys
        .iter()
        .filter_map(|key| key.common.key_id.clone())
        .collect();
    assert!(kids.contains(&first_kid), "{kids:?}");
    assert!(kids.contains(&kid_of(&after.access_token)?), "{kids:?}");
    app.verify(&before.access_token).await?;
    app.verify(&after.access_token).await?;
    Ok(())
}
