//! Several auth-service replicas sharing one PostgreSQL and one Redis behave as one service.
//! Run only when TEST_DATABASE_URL and TEST_REDIS_URL are set (CI sets both).

use std::time::Duration;

use auth_api::{VerifyError, v1 as pb};
use auth_service::config::SecretString;
use tonic::{Code, Status};

use crate::helpers::{
    CuttableProxy, TestApp, TestResult, assert_error, host_port, local_verifier,
    postgres_and_redis, session_token, unique_email, wait_until_rejected, with_bearer,
};

/// Two replicas on one fresh PostgreSQL schema, both using the Redis at `redis_url`.
async fn two_replicas(
    test: &str,
    redis_url: impl Fn() -> String,
    poll_interval: Duration,
) -> Result<Option<(TestApp, TestApp)>, Box<dyn std::error::Error + Send + Sync>> {
    let Some((backend, _)) = postgres_and_redis(test) else {
        return Ok(None);
    };
    let configure = |settings: &mut auth_service::config::Settings| {
        settings.redis_url = Some(SecretString::new(redis_url()));
        settings.revocation_poll_interval = poll_interval;
    };
    let a = TestApp::spawn_with(&backend, configure).await?;
    let mut settings = a.settings.clone();
    configure(&mut settings);
    settings.http.http_addr = Some(([127, 0, 0, 1], 0).into());
    let b = TestApp::start(a.database.clone(), settings).await?;
    Ok(Some((a, b)))
}

/// Two replicas on one fresh PostgreSQL schema and no Redis: only the database connects them.
async fn two_replicas_without_redis(
    test: &str,
    configure: impl Fn(&mut auth_service::config::Settings),
) -> Result<Option<(TestApp, TestApp)>, Box<dyn std::error::Error + Send + Sync>> {
    let Some(backend) = crate::helpers::Backend::postgres(test) else {
        return Ok(None);
    };
    let a = TestApp::spawn_with(&backend, &configure).await?;
    let mut settings = a.settings.clone();
    configure(&mut settings);
    let b = TestApp::start(a.database.clone(), settings).await?;
    Ok(Some((a, b)))
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
async fn within<F, Fut>(limit: Duration, mut check: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Box<dyn std::error::Error + Send + Sync>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("not seen within {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_replica_fails_verify_on_the_other_at_once() -> TestResult {
    let Some((a, b)) = two_replicas("replicas_verify", redis_url, Duration::from_secs(60)).await?
    else {
        return Ok(());
    };
    // Replica B has seen each credential before (so it remembers the session), and the poll
    // interval is long: only the confirmed fan-out can make B refuse from the next call.
    for round in 0..5 {
        let email = unique_email(&format!("replica{round}"));
        let (_, tokens) = a.user_with_tokens(&email).await?;
        let session = session_token(&a.login(&email, pb::CredentialKind::Session).await?)?;
        for credential in [&tokens.access_token, &session] {
            b.verify(credential).await?;
            b.verify(credential).await?;
            a.auth
                .clone()
                .logout(pb::LogoutRequest {
                    token: credential.clone(),
                })
                .await?;
            assert_error(
                b.verify(credential).await,
                Code::Unauthenticated,
                "SESSION_REVOKED",
            );
        }
        assert_error(
            b.refresh(&tokens.refresh_token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    // B did answer the repeat checks from memory: the refusals above are the fan-out's work.
    let metrics = crate::observability::scrape(&b).await?;
    let hits = crate::observability::sample(&metrics, "auth_session_cache_hits_total");
    assert!(hits.is_some_and(|hits| hits >= 10.0), "{hits:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_all_of_a_users_sessions_through_one_replica_fails_verify_on_the_other_at_once()
-> TestResult {
    let Some((a, b)) =
        two_replicas("replicas_revoke_all", redis_url, Duration::from_secs(60)).await?
    else {
        return Ok(());
    };
    let email = unique_email("replica-all");
    a.register(&email).await?;
    let current = session_token(
        &a.login_management(&email, pb::CredentialKind::Session)
            .await?,
    )?;
    let mut others = Vec::new();
    for _ in 0..4 {
        let login = a.login(&email, pb::CredentialKind::Tokens).await?;
        others.push(crate::helpers::token_pair(&login)?);
    }
    let session = session_token(&a.login(&email, pb::CredentialKind::Session).await?)?;
    let mut credentials: Vec<String> = others
        .iter()
        .map(|pair| pair.access_token.clone())
        .collect();
    credentials.push(session);
    for credential in &credentials {
        b.verify(credential).await?;
    }
    // B knows the management session too (it is the caller below).
    assert_eq!(b.list_sessions(&current).await?.len(), 6);
    // Keeping the caller's session: no user-wide event, one revocation per session, announced
    // together.
    let revoked = a
        .auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &current,
            pb::RevokeAllSessionsRequest {
                user_id: String::new(),
                keep_current: true,
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(revoked.revoked_count, 5);
    for credential in &credentials {
        assert_error(
            b.verify(credential).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    let kept = b.list_sessions(&current).await?;
    assert!(kept.len() == 1 && kept[0].current, "{kept:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_changed_through_one_replica_are_seen_by_verify_on_the_other_at_once() -> TestResult {
    let Some((a, b)) = two_replicas("replicas_roles", redis_url, Duration::from_secs(60)).await?
    else {
        return Ok(());
    };
    let admin = crate::admin::admin(&a).await?;
    let email = unique_email("replica-roles");
    let (login, tokens) = a.user_with_tokens(&email).await?;
    let roles_on_b = |principal: Option<pb::Principal>| principal.map(|principal| principal.roles);
    assert_eq!(
        roles_on_b(b.verify(&tokens.access_token).await?.principal),
        Some(Vec::new())
    );
    crate::admin::client(&a)
        .set_roles(with_bearer(
            &admin.access_token,
            pb::SetRolesRequest {
                user_id: login.user_id.clone(),
                roles: vec!["billing".into()],
            },
        )?)
        .await?;
    assert_eq!(
        roles_on_b(b.verify(&tokens.access_token).await?.principal),
        Some(vec!["billing".to_owned()])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_verifier_on_one_replica_rejects_a_session_revoked_through_the_other() -> TestResult
{
    // A long poll interval: only Redis pub/sub can deliver within the wait below.
    let Some((a, b)) = two_replicas("replicas_local", redis_url, Duration::from_secs(60)).await?
    else {
        return Ok(());
    };
    let (_, tokens) = a.user_with_tokens(&unique_email("fanout")).await?;
    let verifier = local_verifier(&a, "api", |_| {}).await?;
    verifier.verify_token(&tokens.access_token).await?;

    b.auth
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_loses_no_revocation() -> TestResult {
    let Some((_, upstream)) = postgres_and_redis("replicas_redis_outage") else {
        return Ok(());
    };
    let proxy = CuttableProxy::start(host_port(&upstream)).await?;
    let through_proxy = format!("redis://{}", proxy.addr);
    let Some((a, b)) = two_replicas(
        "replicas_redis_outage",
        || through_proxy.clone(),
        Duration::from_millis(500),
    )
    .await?
    else {
        return Ok(());
    };
    let email = unique_email("outage");
    let (_, during) = a.user_with_tokens(&email).await?;
    let after = crate::helpers::token_pair(&a.login(&email, pb::CredentialKind::Tokens).await?)?;
    let verifier = local_verifier(&a, "api", |_| {}).await?;
    a.verify(&during.access_token).await?; // remembered by A while the fan-out is up

    proxy.cut(); // Redis is gone for both replicas.
    // The replicas see their subscription's connection close within milliseconds, and stop
    // answering from memory.
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: during.access_token.clone(),
        })
        .await?;
    // Verify never depended on Redis.
    assert_error(
        a.verify(&during.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // Replica A re-reads revocations from the database and feeds them to its verifiers.
    let error =
        wait_until_rejected(&verifier, &during.access_token, Duration::from_secs(5)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");

    proxy.restore(); // Redis is back; so is pub/sub, by itself.
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: after.access_token.clone(),
        })
        .await?;
    let error = wait_until_rejected(&verifier, &after.access_token, Duration::from_secs(5)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    Ok(())
}

/// After Redis comes back, pub/sub carries revocations again by itself. The database re-read is
/// set slower than the test, so it cannot be what delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_resumes_after_a_redis_outage_without_waiting_for_the_poll() -> TestResult {
    let test = "replicas_pub_sub_resumes";
    let Some((_, upstream)) = postgres_and_redis(test) else {
        return Ok(());
    };
    let proxy = CuttableProxy::start(host_port(&upstream)).await?;
    let through_proxy = format!("redis://{}", proxy.addr);
    let Some((a, b)) =
        two_replicas(test, || through_proxy.clone(), Duration::from_secs(600)).await?
    else {
        return Ok(());
    };
    let verifier = local_verifier(&a, "api", |_| {}).await?;
    let email = unique_email("resume");
    b.register(&email).await?;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();

    // Until A has resubscribed, a revocation through B reaches A's feed only by the (600 s)
    // re-read; once it has, within milliseconds. A must be back within 15 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut rounds = 0;
    loop {
        rounds += 1;
        let tokens =
            crate::helpers::token_pair(&b.login(&email, pb::CredentialKind::Tokens).await?)?;
        verifier.verify_token(&tokens.access_token).await?;
        b.auth
            .clone()
            .logout(pb::LogoutRequest {
                token: tokens.access_token.clone(),
            })
            .await?;
        match wait_until_rejected(&verifier, &tokens.access_token, Duration::from_secs(1)).await {
            Ok(error) => {
                assert!(matches!(error, VerifyError::Revoked), "{error:?}");
                return Ok(());
            }
            Err(_) if tokio::time::Instant::now() < deadline => continue,
            Err(error) => {
                return Err(format!("pub/sub did not resume ({rounds} rounds): {error}").into());
            }
        }
    }
}

const POLL: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_without_redis_see_each_others_revocations_within_the_poll_interval() -> TestResult
{
    let Some((a, b)) = two_replicas_without_redis("replicas_no_redis_revocation", |settings| {
        settings.revocation_poll_interval = POLL;
    })
    .await?
    else {
        return Ok(());
    };
    let (_, tokens) = a.user_with_tokens(&unique_email("no-redis")).await?;
    // B's revocation feed (WatchRevocations) and B's ext_authz both allow the token first.
    let verifier = local_verifier(&b, "api", |_| {}).await?;
    verifier.verify_token(&tokens.access_token).await?;
    let bearer = format!("Bearer {}", tokens.access_token);
    let gateway = || {
        crate::ext_authz::check(
            &b,
            crate::ext_authz::http_check("GET", &[("authorization", bearer.as_str())]),
        )
    };
    let allowed = |response: &auth_api::envoy::service::auth::v3::CheckResponse| {
        response.status.as_ref().map(|status| status.code) == Some(0)
    };
    assert!(allowed(&gateway().await?));

    a.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.refresh_token.clone(),
        })
        .await?;
    let error = wait_until_rejected(&verifier, &tokens.access_token, POLL * 4).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    within(POLL * 4, || async { Ok(!allowed(&gateway().await?)) }).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_suspensions_reach_a_caching_replica_without_redis_within_the_poll_interval()
-> TestResult {
    // B remembers sessions for a minute: only the database re-read can tell it within the test.
    let Some((a, b)) = two_replicas_without_redis("replicas_no_redis_roles", |settings| {
        settings.revocation_poll_interval = POLL;
        settings.session_cache = auth_service::config::SessionCache::On;
        settings.session_cache_ttl = Duration::from_secs(60);
    })
    .await?
    else {
        return Ok(());
    };
    let admin = crate::admin::admin(&a).await?;
    let (login, tokens) = a.user_with_tokens(&unique_email("no-redis-roles")).await?;
    let roles_on_b = || async {
        let principal = b.verify(&tokens.access_token).await?.principal;
        Ok::<_, Status>(principal.map(|principal| principal.roles))
    };
    assert_eq!(roles_on_b().await?, Some(Vec::new()));
    assert_eq!(roles_on_b().await?, Some(Vec::new())); // now from B's memory

    crate::admin::client(&a)
        .set_roles(with_bearer(
            &admin.access_token,
            pb::SetRolesRequest {
                user_id: login.user_id.clone(),
                roles: vec!["billing".into()],
            },
        )?)
        .await?;
    within(POLL * 4, || async {
        Ok(roles_on_b().await? == Some(vec!["billing".to_owned()]))
    })
    .await?;

    crate::admin::client(&a)
        .suspend_user(with_bearer(
            &admin.access_token,
            pb::SuspendUserRequest {
                user_id: login.user_id.clone(),
            },
        )?)
        .await?;
    within(POLL * 4, || async {
        Ok(b.verify(&tokens.access_token).await.is_err())
    })
    .await?;
    assert_error(
        b.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_revoked_through_one_replica_is_refused_by_the_other_at_once() -> TestResult {
    let Some((backend, _)) = postgres_and_redis("replicas_key_revoked") else {
        return Ok(());
    };
    // Neither replica re-reads its keys on a period: only the fan-out can tell B.
    let configure = |settings: &mut auth_service::config::Settings| {
        settings.redis_url = Some(SecretString::new(redis_url()));
        settings.key_reload_interval = Duration::from_secs(3600);
    };
    let a = TestApp::spawn_with(&backend, configure).await?;
    let mut settings = a.settings.clone();
    configure(&mut settings);
    let b = TestApp::start(a.database.clone(), settings).await?;
    let admin = crate::admin::admin(&a).await?;
    let (_, tokens) = a.user_with_tokens(&unique_email("key-elsewhere")).await?;
    let kid_of = |token: &str| jsonwebtoken::decode_header(token).map(|header| header.kid);
    let compromised = kid_of(&tokens.access_token)?.ok_or("kid")?;
    b.verify(&tokens.access_token).await?;
    let verifier = local_verifier(&b, "api", |_| {}).await?;
    verifier.verify_token(&tokens.access_token).await?;

    let request = with_bearer(
        &admin.session_token,
        pb::RevokeSigningKeyRequest {
            kid: compromised.clone(),
        },
    )?;
    let revoked = crate::admin::client(&a)
        .revoke_signing_key(request)
        .await?
        .into_inner();
    // Confirmed before the call answered: B refuses from its next call.
    assert_error(
        b.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "SIGNING_KEY_REVOKED",
    );
    let error =
        wait_until_rejected(&verifier, &tokens.access_token, Duration::from_secs(2)).await?;
    assert!(matches!(error, VerifyError::Invalid), "{error:?}");

    // B signs with the successor at once, and its local verifier learns the new key.
    let (_, fresh) = b.user_with_tokens(&unique_email("after-revoke")).await?;
    assert_eq!(kid_of(&fresh.access_token)?, Some(revoked.successor_kid));
    b.verify(&fresh.access_token).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Err(error) = verifier.verify_token(&fresh.access_token).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B's local verifier refuses the successor's tokens: {error:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
