//! Key discovery over HTTP: the JWKS and the discovery document at the URLs JWT libraries and
//! gateways expect (Envoy `jwt_authn`, PyJWT's `PyJWKClient`, jose's `createRemoteJWKSet`), with
//! HTTP caching, and `/metrics` still reachable through the old setting.

use std::time::Duration;

use auth_api::v1::GetJwksRequest;
use auth_service::{app::Components, domain::Timestamp};

use crate::{
    ext_authz::claims_of,
    helpers::{Backend, TestApp, TestResult, http_client, unique_email},
};

async fn with_http(
    configure: impl FnOnce(&mut auth_service::config::Settings),
) -> Result<(TestApp, std::net::SocketAddr), Box<dyn std::error::Error + Send + Sync>> {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.http.http_addr = Some(([127, 0, 0, 1], 0).into());
        configure(settings);
    })
    .await?;
    let addr = app.http_addr.ok_or("no HTTP listener")?;
    Ok((app, addr))
}

const JWKS: &str = "/.well-known/jwks.json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_url_serves_the_keys_of_get_jwks_cacheably_and_revalidates_by_etag() -> TestResult
{
    let (app, http) = with_http(|settings| {
        settings.key_activation_delay = Duration::from_secs(61);
        settings.key_reload_interval = Duration::from_secs(1);
    })
    .await?;
    let served = http_client::get(http, JWKS, &[]).await?;
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(served.header("content-type"), Some("application/json"));
    let grpc = app
        .keys
        .clone()
        .get_jwks(GetJwksRequest {})
        .await?
        .into_inner();
    let grpc_jwks: serde_json::Value = serde_json::from_str(&grpc.jwks_json)?;
    assert_eq!(served.json()?, grpc_jwks);
    assert!(!grpc_jwks["keys"].as_array().ok_or("keys")?.is_empty());
    // Half of (activation delay - reload interval): cached twice over before a new key signs.
    assert_eq!(served.header("cache-control"), Some("public, max-age=30"));

    let etag = served.header("etag").ok_or("no ETag")?.to_owned();
    for matching in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
        let again = http_client::get(http, JWKS, &[("if-none-match", &matching)]).await?;
        assert_eq!(again.status, 304, "If-None-Match: {matching}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(again.header("cache-control"), Some("public, max-age=30"));
    }
    let stale = http_client::get(http, JWKS, &[("if-none-match", "\"older\"")]).await?;
    assert_eq!(stale.status, 200);

    // A rotation elsewhere publishes a key: once the server re-read the keys, the set and its
    // tag change, so a client revalidating with the old tag gets the new set.
    let admin = Components::open(&app.settings).await?;
    let next = admin
        .keys
        .rotate(
            Timestamp::now(),
            Duration::from_secs(61),
            Duration::from_secs(900),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rotated = http_client::get(http, JWKS, &[("if-none-match", &etag)]).await?;
    assert_eq!(rotated.status, 200);
    assert_ne!(rotated.header("etag"), Some(etag.as_str()));
    assert!(rotated.body.contains(&next), "{}", rotated.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discovery_document_names_the_token_issuer_and_the_jwks_url() -> TestResult {
    let (app, http) = with_http(|settings| settings.issuer = "https://auth.test".into()).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("discovery")).await?;
    let response = http_client::get(http, "/.well-known/openid-configuration", &[]).await?;
    assert_eq!(response.status, 200, "{response:?}");
    let document = response.json()?;
    assert_eq!(document["issuer"], claims_of(&tokens.access_token)["iss"]);
    assert_eq!(document["issuer"], "https://auth.test");
    let jwks_uri = document["jwks_uri"].as_str().ok_or("no jwks_uri")?;
    assert_eq!(jwks_uri, format!("http://{http}{JWKS}"));
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
    // Nothing this service does not do: no OAuth endpoints.
    for absent in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
    ] {
        assert!(document.get(absent).is_none(), "{absent} in {document}");
    }

    // Behind a proxy, the configured public URL names the keys.
    // Kept alive to the end: a dropped TestApp shuts its server down.
    let (_behind_app, behind) = with_http(|settings| {
        settings.http.http_public_url = Some("https://auth.example.com/".into());
    })
    .await?;
    let document = http_client::get(behind, "/.well-known/openid-configuration", &[])
        .await?
        .json()?;
    assert_eq!(
        document["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_metrics_setting_still_serves_metrics_and_now_the_rest() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.http.metrics_addr = Some(([127, 0, 0, 1], 0).into());
    })
    .await?;
    app.user_with_tokens(&unique_email("alias")).await?;
    let http = app
        .http_addr
        .ok_or("AUTH_METRICS_ADDR opened no listener")?;
    let metrics = http_client::get(http, "/metrics", &[]).await?;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains(r#"auth_logins_total{outcome="success"} 1"#),
        "{}",
        metrics.body
    );
    assert_eq!(http_client::get(http, JWKS, &[]).await?.status, 200);
    assert_eq!(http_client::get(http, "/healthz", &[]).await?.status, 200);
    assert_eq!(http_client::get(http, "/readyz", &[]).await?.status, 200);
    assert_eq!(http_client::get(http, "/nothing", &[]).await?.status, 404);
    Ok(())
}
