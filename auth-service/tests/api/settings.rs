//! Settings no other test sets, each by the behaviour a deployment relies on: the session cache
//! and its TTL, concurrent streams per connection, the exchange lifetime and its cap, and a
//! `LocalVerifier` that may fail open or refetch keys.

use std::time::Duration;

use auth_api::{
    VerifyError,
    v1::{self as pb, key_service_client::KeyServiceClient},
};
use auth_service::{
    config::SessionCache,
    domain::{Timestamp, ports::RevokeReason},
};
use tonic::Code;

use crate::{
    ext_authz::claims_of,
    helpers::{
        Backend, TestApp, TestResult, assert_error, local_verifier, on_both_backends, unique_email,
    },
    observability::{sample, scrape},
};

on_both_backends!(
    without_the_session_cache_a_revocation_behind_the_services_back_is_seen_at_once,
    the_session_cache_forgets_what_it_was_not_told_within_its_ttl,
    an_exchanged_token_lives_the_exchange_ttl_and_never_longer_than_an_access_token,
);

/// Ends `session_id` in the store only, as a database operator would: no announcement reaches
/// the service's caches.
async fn revoke_behind_the_services_back(app: &TestApp, session_id: &str) -> TestResult {
    let store = app.database.store().await?;
    store
        .revoke_session(session_id, RevokeReason::Revoked, Timestamp::now())
        .await?;
    Ok(())
}

async fn without_the_session_cache_a_revocation_behind_the_services_back_is_seen_at_once(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_cache = SessionCache::Off;
    })
    .await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("nocache")).await?;
    app.verify(&tokens.access_token).await?;
    revoke_behind_the_services_back(&app, &login.session_id).await?;
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn the_session_cache_forgets_what_it_was_not_told_within_its_ttl(
    backend: Backend,
) -> TestResult {
    let ttl = Duration::from_secs(1);
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_cache = SessionCache::On;
        settings.session_cache_ttl = ttl;
    })
    .await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("cachettl")).await?;
    app.verify(&tokens.access_token).await?;
    revoke_behind_the_services_back(&app, &login.session_id).await?;
    // Announced revocations reach the cache before they are acknowledged; this one was not
    // announced, so the TTL is all that bounds it.
    let deadline = tokio::time::Instant::now() + ttl * 4;
    loop {
        match app.verify(&tokens.access_token).await {
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => return Err("the cache kept a revoked session past its TTL".into()),
            Err(status) => {
                assert_error::<()>(Err(status), Code::Unauthenticated, "SESSION_REVOKED");
                return Ok(());
            }
        }
    }
}

async fn an_exchanged_token_lives_the_exchange_ttl_and_never_longer_than_an_access_token(
    backend: Backend,
) -> TestResult {
    for (exchange_ttl, expected) in [(60, 60), (3600, 900)] {
        let app = TestApp::spawn_with(&backend, |settings| {
            settings.exchange_audiences = vec!["payments".into()];
            settings.exchange_token_ttl = Duration::from_secs(exchange_ttl);
        })
        .await?;
        let (_, tokens) = app.user_with_tokens(&unique_email("exttl")).await?;
        let exchanged = app
            .auth
            .clone()
            .exchange_token(pb::ExchangeTokenRequest {
                subject_token: tokens.access_token.clone(),
                audience: "payments".into(),
            })
            .await?
            .into_inner();
        let claims = claims_of(&exchanged.access_token);
        let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
        // The subject token was minted up to a second earlier and caps the exchanged one.
        assert!(
            (expected - 1..=expected).contains(&lifetime),
            "exchange TTL {exchange_ttl} s gave a token living {lifetime} s"
        );
    }
    Ok(())
}

/// With two streams allowed per connection, two open feeds hold the connection: a third call
/// waits until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrent_streams_of_a_connection_wait_for_a_free_one() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.max_concurrent_streams = 2;
    })
    .await?;
    let mut keys = KeyServiceClient::new(app.channel.clone());
    let first = keys
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await?
        .into_inner();
    let _second = keys
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await?
        .into_inner();
    let waiting = tokio::time::timeout(
        Duration::from_millis(500),
        keys.get_jwks(pb::GetJwksRequest::default()),
    )
    .await;
    assert!(waiting.is_err(), "a third stream ran at once: {waiting:?}");
    drop(first);
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        keys.get_jwks(pb::GetJwksRequest::default()),
    )
    .await??;
    assert!(answered.into_inner().jwks_json.contains("EdDSA"));
    Ok(())
}

/// `fail_closed: false` keeps accepting what the verifier knows through an outage of any length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_verifier_allowed_to_fail_open_keeps_accepting_through_a_long_outage() -> TestResult
{
    let mut app = TestApp::spawn(&Backend::Sqlite).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("failopen")).await?;
    let open = local_verifier(&app, "api", |config| {
        config.fail_closed = false;
        config.max_feed_outage = Duration::from_millis(200);
        config.feed_silence_limit = Duration::from_millis(500);
    })
    .await?;
    let closed = local_verifier(&app, "api", |config| {
        config.max_feed_outage = Duration::from_millis(200);
        config.feed_silence_limit = Duration::from_millis(500);
    })
    .await?;
    open.verify_token(&tokens.access_token).await?;
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(matches!(
        closed.verify_token(&tokens.access_token).await,
        Err(VerifyError::Unavailable)
    ));
    open.verify_token(&tokens.access_token).await?;
    Ok(())
}

/// Tokens naming keys the verifier has never seen make it refetch the JWKS at most once per
/// `jwks_refetch_interval`, however many arrive: a flood of made-up `kid`s is no flood of calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refetch_the_jwks_at_most_once_per_interval() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.http.http_addr = Some(([127, 0, 0, 1], 0).into());
    })
    .await?;
    let interval = Duration::from_secs(2);
    let verifier = local_verifier(&app, "api", |config| {
        config.jwks_refetch_interval = interval;
    })
    .await?;
    // Past the interval of the fetch at connection time: the first unknown kid may refetch.
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    let fetches = || async {
        let body = scrape(&app).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            sample(
                &body,
                r#"auth_rpc_requests_total{code="Ok",method="/auth.v1.KeyService/GetJwks"}"#,
            )
            .unwrap_or(0.0),
        )
    };
    let before = fetches().await?;
    for kid in 0..20 {
        let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"made-up-{kid}"}}"#);
        let token = format!(
            "{}.e30.{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header),
            "A".repeat(86)
        );
        assert!(verifier.verify_token(&token).await.is_err());
    }
    let refetched = fetches().await? - before;
    assert!(
        refetched <= 1.0,
        "{refetched} JWKS fetches for 20 unknown kids"
    );
    Ok(())
}
