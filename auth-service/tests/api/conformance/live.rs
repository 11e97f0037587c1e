//! The live scenario of `conformance/scenario.json`, run by the Rust `LocalVerifier` as the
//! Python and Node libraries run it (`clients/run.sh`): a real server, the verifier's feed cut
//! and restored with a TCP proxy the test controls.

use std::time::{Duration, Instant};

use auth_api::{
    LocalVerifier, LocalVerifierConfig, VerifyError,
    v1::{self as pb, CredentialKind},
};
use serde_json::Value;

use crate::helpers::{Backend, CuttableProxy, TestApp, TestResult, token_pair, unique_email};

fn reason(result: Result<pb::Principal, VerifyError>) -> String {
    match result {
        Ok(_) => "OK".into(),
        Err(error) => super::reason(Err(error)),
    }
}

async fn wait_for_reason(
    verifier: &LocalVerifier,
    token: &str,
    wanted: &str,
    within: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        if reason(verifier.verify_token(token).await) == wanted {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            return Err(format!("not {wanted} within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn the_rust_local_verifier_passes_the_live_scenario() -> TestResult {
    let scenario: Value = serde_json::from_str(&std::fs::read_to_string(
        super::vectors_dir().join("../scenario.json"),
    )?)?;
    let ms = |key: &str| Duration::from_millis(scenario[key].as_u64().unwrap());
    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let email = unique_email("scenario");
    app.register(&email).await?;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(token_pair(&app.login(&email, CredentialKind::Tokens).await?)?.access_token);
    }
    let (a, b, c) = (&tokens[0], &tokens[1], &tokens[2]);
    let logout = |token: &str| {
        let mut auth = app.auth.clone();
        let token = token.to_owned();
        async move { auth.logout(pb::LogoutRequest { token }).await }
    };
    let proxy = CuttableProxy::start(app.addr.to_string()).await?;
    let mut config = LocalVerifierConfig::new(scenario["audience"].as_str().unwrap());
    config.max_feed_outage = ms("max_feed_outage_ms");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", proxy.addr))?.connect_lazy();
    let verifier = LocalVerifier::connect(channel, config).await?;

    verifier.verify_token(a).await?;
    logout(a).await?;
    wait_for_reason(&verifier, a, "SESSION_REVOKED", ms("refusal_within_ms")).await?;
    assert_eq!(reason(verifier.verify_token(b).await), "OK");

    let cut_at = Instant::now();
    proxy.cut();
    logout(c).await?;
    tokio::time::sleep(ms("accepted_until_ms").saturating_sub(cut_at.elapsed())).await;
    assert_eq!(
        reason(verifier.verify_token(b).await),
        "OK",
        "failed closed before the outage bound"
    );
    let outage = ms("max_feed_outage_ms");
    wait_for_reason(
        &verifier,
        b,
        "AUTH_UNAVAILABLE",
        outage + Duration::from_secs(1),
    )
    .await?;
    assert!(cut_at.elapsed() > outage);
    assert_eq!(reason(verifier.verify_token(c).await), "AUTH_UNAVAILABLE");

    proxy.restore();
    let started = Instant::now();
    while !verifier.feed_is_live() {
        assert!(
            started.elapsed() < ms("recovery_within_ms"),
            "did not recover"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(reason(verifier.verify_token(b).await), "OK");
    // Revoked while the feed was cut: resumed from its cursor, the verifier missed nothing.
    assert_eq!(reason(verifier.verify_token(c).await), "SESSION_REVOKED");
    Ok(())
}
