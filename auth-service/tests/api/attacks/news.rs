//! Attacks on the revocation news: a message forged on Redis (by anyone who can publish there)
//! must neither revoke a live session nor suppress the real revocation, and a revocation whose
//! transaction committed long after its request began must still reach every verifier.

use std::time::Duration;

use auth_api::VerifyError;
use auth_api::v1 as pb;
use auth_service::{
    config::SecretString,
    domain::{Timestamp, ports::RevokeReason},
};
use tokio_stream::StreamExt;

use crate::helpers::{
    Backend, TestApp, TestResult, local_verifier, on_both_backends, postgres_and_redis,
    unique_email, wait_until_rejected,
};

on_both_backends!(a_revocation_committed_long_after_its_request_began_still_reaches_the_feed);

/// Publishes `events` (JSON) on the deployment's channel as replica "forger", and waits until
/// every subscribed replica confirmed it applied them.
async fn forge(
    redis_url: &str,
    prefix: &str,
    events: serde_json::Value,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let client = redis::Client::open(redis_url)?;
    let mut confirmations = client.get_async_pubsub().await?;
    confirmations
        .subscribe(format!("{prefix}:revocations:confirm"))
        .await?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let envelope = serde_json::json!({ "from": "forger", "seq": 1, "events": events });
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}:revocations"))
        .arg(envelope.to_string())
        .query_async(&mut connection)
        .await?;
    assert!(receivers >= 1, "no replica listens on {prefix}:revocations");
    let mut messages = confirmations.on_message();
    let mut confirmed = 0;
    while confirmed < receivers {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await?
            .ok_or("confirmation channel closed")?;
        let payload: String = message.get_payload()?;
        if payload.contains("\"forger\"") {
            confirmed += 1;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_forged_on_redis_neither_revokes_a_live_session_nor_suppresses_the_real_one()
-> TestResult {
    let Some((backend, redis_url)) = postgres_and_redis("news_forged") else {
        return Ok(());
    };
    // This deployment's own channels, and a poll interval long enough that only the Redis
    // messages can be at work within the test.
    let prefix = format!("test-news:{}", unique_email("forged"));
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.redis_url = Some(SecretString::new(redis_url.clone()));
        settings.redis_channel_prefix = prefix.clone();
        settings.revocation_poll_interval = Duration::from_secs(60);
        settings.feed_heartbeat_interval = Duration::from_millis(100);
    })
    .await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("forged")).await?;
    let verifier = local_verifier(&app, "api", |_| {}).await?;
    verifier.verify_token(&tokens.access_token).await?;

    // The forged revocation claims the live session ended at the epoch: were it believed, the
    // feed would revoke the session, and then forget it at the next heartbeat (its tokens
    // "expired" long ago) while remembering the session as announced.
    let session = serde_json::json!({
        "session_id": login.session_id,
        "user_id": login.user_id,
        "revoked_at": 0,
    });
    forge(
        &redis_url,
        &prefix,
        serde_json::json!([{ "revoked": { "Session": session } }]),
    )
    .await?;
    for _ in 0..3 {
        verifier.next_feed_event().await; // heartbeats: expired revocations are swept
    }
    verifier.verify_token(&tokens.access_token).await?;
    app.verify(&tokens.access_token).await?;

    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.refresh_token.clone(),
        })
        .await?;
    let error =
        wait_until_rejected(&verifier, &tokens.access_token, Duration::from_secs(3)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    Ok(())
}

async fn a_revocation_committed_long_after_its_request_began_still_reaches_the_feed(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.revocation_poll_interval = Duration::from_millis(200);
    })
    .await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("late")).await?;
    let verifier = local_verifier(&app, "api", |_| {}).await?;
    verifier.verify_token(&tokens.access_token).await?;
    // A revocation timestamped when its request began, a minute ago, that commits only now (a
    // slow transaction, or a writer whose clock is a minute behind), written by another
    // process: no announcement reaches this server, only the database.
    let store = app.database.store().await?;
    let began = Timestamp::now().minus(Duration::from_secs(60));
    let revoked = store
        .revoke_session(&login.session_id, RevokeReason::Revoked, began)
        .await?;
    assert!(revoked.is_some());
    let error =
        wait_until_rejected(&verifier, &tokens.access_token, Duration::from_secs(3)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    Ok(())
}
