//! Brute force and overload: the per-address throttle, the per-account lockout (also for unknown
//! emails, atomic under parallel guesses, shared by replicas), the common-password list, hash
//! upgrades on login, and load shedding in front of argon2.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use auth_api::v1::{self as pb, CredentialKind};
use auth_service::{
    config::{SecretString, Settings},
    domain::{
        Timestamp,
        accounts::Email,
        limits::{Attempt, AttemptScope, Limiter, LockoutRule, MemoryLimiter},
    },
    store::redis_fanout::RedisLink,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::{
    Backend, CuttableProxy, PASSWORD, TestApp, TestResult, assert_error, host_port,
    on_both_backends, postgres_and_redis, token_pair, unique_email, with_bearer,
};

on_both_backends!(
    too_many_calls_from_one_address_are_throttled_with_a_retry_delay,
    a_locked_account_answers_exactly_like_a_wrong_password_until_the_lock_ends,
    an_unknown_email_is_locked_too_even_once_it_is_registered,
    parallel_wrong_guesses_lock_the_account_before_the_right_password_gets_in,
    common_passwords_are_refused_at_register_and_change_password,
    a_hash_with_older_parameters_is_upgraded_on_the_next_login,
    a_burst_of_logins_beyond_the_hashing_queue_is_shed_while_verify_answers,
    shed_logins_do_not_count_toward_the_lockout,
    a_locked_login_takes_as_long_as_a_wrong_password,
);

fn login_request(email: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        email: email.into(),
        password: password.into(),
        kind: CredentialKind::Tokens.into(),
        management: false,
    }
}

async fn login(app: &TestApp, email: &str, password: &str) -> Result<pb::LoginResponse, Status> {
    Ok(app
        .auth
        .clone()
        .login(login_request(email, password))
        .await?
        .into_inner())
}

/// A wrong password, answered as one (not shed, not throttled).
async fn wrong_guess(app: &TestApp, email: &str) {
    assert_error(
        login(app, email, "not the password").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
}

/// Everything a client can see of a failed call (code, message, encoded details).
fn visible(status: &Status) -> (Code, String, Vec<u8>) {
    (
        status.code(),
        status.message().to_owned(),
        status.details().to_vec(),
    )
}

/// A small lockout: `threshold` failures, then 1 s doubling up to `max`.
fn lockout(settings: &mut Settings, threshold: u32, base: Duration, max: Duration) {
    settings.account_lockout_threshold = threshold;
    settings.account_lockout_base = base;
    settings.account_lockout_max = max;
}

async fn too_many_calls_from_one_address_are_throttled_with_a_retry_delay(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.login_rate_per_address = 3;
        settings.account_lockout_threshold = 0;
    })
    .await?;
    let email = unique_email("throttle");
    app.register(&email).await?;
    for _ in 0..2 {
        assert_error(
            login(&app, &email, "not the password").await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    login(&app, &email, PASSWORD).await?;
    // The fourth call in the minute is refused before any password check, even the right one.
    let status = login(&app, &email, PASSWORD).await.expect_err("throttled");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.get_details_error_info().map(|info| info.reason),
        Some("RATE_LIMITED".into())
    );
    let delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a retry delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(60),
        "{delay:?}"
    );

    // Register has its own budget, counted the same way (one registration above).
    for n in 0..2 {
        app.register(&unique_email(&format!("reg{n}"))).await?;
    }
    assert_error(
        app.register(&unique_email("reg-over")).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    Ok(())
}

async fn a_locked_account_answers_exactly_like_a_wrong_password_until_the_lock_ends(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        lockout(settings, 3, Duration::from_secs(1), Duration::from_secs(2));
    })
    .await?;
    let email = unique_email("lock");
    app.register(&email).await?;
    let mut wrong = Vec::new();
    for _ in 0..3 {
        wrong.push(
            login(&app, &email, "not the password")
                .await
                .expect_err("wrong password"),
        );
    }
    // Locked: the right password gets the wrong-password answer, byte for byte.
    let locked = login(&app, &email, PASSWORD).await.expect_err("locked");
    assert_eq!(visible(&locked), visible(&wrong[0]));
    assert_error::<()>(Err(locked), Code::Unauthenticated, "INVALID_CREDENTIALS");

    // The lock is temporary.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    login(&app, &email, PASSWORD).await?;

    // A success forgets the failures: the next lock needs the full threshold again.
    for _ in 0..2 {
        wrong_guess(&app, &email).await;
    }
    login(&app, &email, PASSWORD).await?;
    Ok(())
}

async fn an_unknown_email_is_locked_too_even_once_it_is_registered(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        lockout(
            settings,
            3,
            Duration::from_secs(30),
            Duration::from_secs(30),
        );
    })
    .await?;
    let email = unique_email("ghost");
    for _ in 0..3 {
        assert_error(
            login(&app, &email, PASSWORD).await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    // The lock is on the email, not on a row: an attacker cannot tell it from a real account.
    app.register(&email).await?;
    assert_error(
        login(&app, &email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    // Letter case does not make another account.
    assert_error(
        login(&app, &email.to_uppercase(), PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    Ok(())
}

async fn parallel_wrong_guesses_lock_the_account_before_the_right_password_gets_in(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        lockout(
            settings,
            5,
            Duration::from_secs(30),
            Duration::from_secs(30),
        );
        settings.login_rate_per_address = 1_000;
    })
    .await?;
    let email = unique_email("parallel");
    app.register(&email).await?;
    let guesses = (0..20).map(|n| {
        let mut client = app.auth.clone();
        let request = login_request(&email, &format!("guess number {n}"));
        tokio::spawn(async move { client.login(request).await })
    });
    for guess in futures_join(guesses.collect()).await {
        assert_error(guess?, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    assert_error(
        login(&app, &email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    Ok(())
}

async fn futures_join<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await);
    }
    results
}

async fn common_passwords_are_refused_at_register_and_change_password(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| settings.password_min_length = 10).await?;
    let register = |password: &str| {
        let mut client = app.auth.clone();
        let request = pb::RegisterRequest {
            email: unique_email("common"),
            password: password.into(),
        };
        async move { client.register(request).await }
    };
    assert_error(
        register("password123").await,
        Code::InvalidArgument,
        "COMMON_PASSWORD",
    );
    // Compared without regard to case; no composition rule makes a listed password acceptable.
    assert_error(
        register("QWERTYUIOP").await,
        Code::InvalidArgument,
        "COMMON_PASSWORD",
    );
    // The configured minimum length.
    assert_error(
        register("nine char").await,
        Code::InvalidArgument,
        "WEAK_PASSWORD",
    );
    register(PASSWORD).await?;

    let email = unique_email("changer");
    app.register(&email).await?;
    let manager = app.manager_token(&email).await?;
    let request = with_bearer(
        &manager,
        pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "password1234".into(),
        },
    )?;
    assert_error(
        app.auth.clone().change_password(request).await,
        Code::InvalidArgument,
        "COMMON_PASSWORD",
    );
    Ok(())
}

async fn a_hash_with_older_parameters_is_upgraded_on_the_next_login(
    backend: Backend,
) -> TestResult {
    let mut app = TestApp::spawn_with(&backend, |settings| settings.argon2_iterations = 2).await?;
    let email = unique_email("rehash");
    app.register(&email).await?;
    let store = app.database.store().await?;
    let stored = |store: Arc<dyn auth_service::domain::ports::Store>, email: String| async move {
        store
            .find_user_by_email_key(&Email::lookup_key(&email))
            .await
            .map(|user| user.map(|user| user.password_hash).unwrap_or_default())
    };
    let before = stored(store.clone(), email.clone()).await?;
    assert!(before.contains(",t=2,"), "{before}");

    // The operator raises the cost; the next successful login re-hashes.
    app.stop().await;
    let mut settings = app.settings.clone();
    settings.argon2_iterations = 3;
    let app = TestApp::start(app.database.clone(), settings).await?;
    wrong_guess(&app, &email).await;
    assert_eq!(stored(store.clone(), email.clone()).await?, before);
    login(&app, &email, PASSWORD).await?;
    let after = stored(store.clone(), email.clone()).await?;
    assert!(after.contains(",t=3,"), "{after}");
    // And the upgraded hash still verifies.
    login(&app, &email, PASSWORD).await?;
    assert_eq!(stored(store, email).await?, after);
    Ok(())
}

async fn a_burst_of_logins_beyond_the_hashing_queue_is_shed_while_verify_answers(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.hashing_concurrency = Some(1);
        settings.hashing_queue_limit = 1;
        settings.login_rate_per_address = 1_000;
        settings.account_lockout_threshold = 0;
        // Costlier hashes, so that the burst overlaps.
        settings.argon2_iterations = 6;
    })
    .await?;
    let email = unique_email("burst");
    app.register(&email).await?;
    let tokens = token_pair(&login(&app, &email, PASSWORD).await?)?;

    let burst: Vec<_> = (0..12)
        .map(|_| {
            let mut client = app.auth.clone();
            let request = login_request(&email, PASSWORD);
            tokio::spawn(async move {
                let started = Instant::now();
                let result = client.login(request).await;
                (result, started.elapsed())
            })
        })
        .collect();
    // Verify does not hash: it answers during the burst.
    let started = Instant::now();
    app.verify(&tokens.access_token).await?;
    let verify_time = started.elapsed();

    let mut shed = 0;
    let mut served = 0;
    for outcome in futures_join(burst).await {
        let (result, elapsed) = outcome?;
        match result {
            Ok(_) => served += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(
                    status.get_details_error_info().map(|info| info.reason),
                    Some("OVERLOADED".into())
                );
                assert_eq!(
                    status
                        .get_details_retry_info()
                        .and_then(|info| info.retry_delay),
                    Some(Duration::from_secs(1))
                );
                assert!(
                    elapsed < Duration::from_secs(2),
                    "shed at once: {elapsed:?}"
                );
                shed += 1;
            }
        }
    }
    assert!(served >= 1, "some logins are served");
    assert!(shed >= 1, "some logins are shed (served {served})");
    assert!(verify_time < Duration::from_secs(2), "{verify_time:?}");
    Ok(())
}

/// A login shed by the full hashing queue checked no password, so it is no guess: an attacker
/// (or a busy legitimate client) whose logins are shed does not move the account toward a lock.
async fn shed_logins_do_not_count_toward_the_lockout(backend: Backend) -> TestResult {
    const THRESHOLD: u32 = 20;
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.hashing_concurrency = Some(1);
        settings.hashing_queue_limit = 1;
        settings.login_rate_per_address = 1_000;
        lockout(
            settings,
            THRESHOLD,
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        // Costlier hashes, so that the burst overlaps.
        settings.argon2_iterations = 6;
    })
    .await?;
    let email = unique_email("shed-guesses");
    app.register(&email).await?;

    let burst: Vec<_> = (0..12)
        .map(|_| {
            let mut client = app.auth.clone();
            let request = login_request(&email, "not the password");
            tokio::spawn(async move { client.login(request).await })
        })
        .collect();
    let (mut shed, mut counted) = (0, 0);
    for outcome in futures_join(burst).await {
        let status = outcome?.expect_err("a wrong password logged in");
        let reason = status.get_details_error_info().map(|info| info.reason);
        match reason.as_deref() {
            Some("OVERLOADED") => shed += 1,
            Some("INVALID_CREDENTIALS") => counted += 1,
            other => panic!("unexpected answer {other:?}: {status:?}"),
        }
    }
    assert!(shed >= 1, "nothing was shed ({counted} checked)");

    // One guess short of the threshold, counting only the checked ones: still not locked, so
    // the right password gets in. Had the shed ones counted, the account would be locked.
    for _ in counted..THRESHOLD - 1 {
        wrong_guess(&app, &email).await;
    }
    login(&app, &email, PASSWORD).await?;
    Ok(())
}

/// A locked account answers after the same password check as a wrong password, so the answer's
/// timing does not tell an attacker that the lock (rather than the guess) refused them.
async fn a_locked_login_takes_as_long_as_a_wrong_password(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.login_rate_per_address = 1_000;
        lockout(
            settings,
            3,
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        // A hash that dominates the call's time.
        settings.argon2_iterations = 6;
    })
    .await?;
    let locked = unique_email("locked");
    app.register(&locked).await?;
    for _ in 0..3 {
        wrong_guess(&app, &locked).await;
    }
    // Unlocked accounts, one wrong guess each, alternating with locked attempts with the right
    // password, so that whatever else loads the machine weighs on both alike.
    const SAMPLES: usize = 9;
    let (mut wrong, mut refused_by_lock) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let open = unique_email("open");
        app.register(&open).await?;
        for (email, password, times) in [
            (&open, "not the password", &mut wrong),
            (&locked, PASSWORD, &mut refused_by_lock),
        ] {
            let started = Instant::now();
            assert_error(
                login(&app, email, password).await,
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            );
            times.push(started.elapsed());
        }
    }
    wrong.sort();
    refused_by_lock.sort();
    let (wrong, refused_by_lock) = (wrong[SAMPLES / 2], refused_by_lock[SAMPLES / 2]);
    assert!(
        refused_by_lock * 2 >= wrong && wrong * 2 >= refused_by_lock,
        "a wrong password takes {wrong:?}, a locked login {refused_by_lock:?}"
    );
    Ok(())
}

/// Two replicas on one database and one Redis: a lock set through A holds on B, and so does the
/// per-address budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_set_through_one_replica_holds_on_the_other() -> TestResult {
    let Some((backend, redis_url)) = postgres_and_redis("brute_force_replicas") else {
        return Ok(());
    };
    let configure = |settings: &mut Settings| {
        settings.redis_url = Some(SecretString::new(redis_url.clone()));
        lockout(
            settings,
            3,
            Duration::from_secs(30),
            Duration::from_secs(30),
        );
        settings.login_rate_per_address = 8;
    };
    let a = TestApp::spawn_with(&backend, configure).await?;
    let b = TestApp::start(a.database.clone(), a.settings.clone()).await?;
    let email = unique_email("shared");
    a.register(&email).await?;
    for _ in 0..3 {
        wrong_guess(&a, &email).await;
    }
    assert_error(
        login(&b, &email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    // 3 logins on A and 1 on B so far: 4 more on B use up the shared budget of 8.
    for _ in 0..4 {
        assert_error(
            login(&b, &email, PASSWORD).await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    assert_error(
        login(&a, &email, PASSWORD).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    Ok(())
}

/// The Redis script settles attempts atomically: of 20 racing failures, exactly the threshold
/// are counted before the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_failures_in_redis_lock_after_exactly_the_threshold() -> TestResult {
    let Some((_, redis_url)) = postgres_and_redis("brute_force_redis_race") else {
        return Ok(());
    };
    let link = RedisLink::open(&redis_url, None, "auth.v1").await?;
    let prefix = format!("test:{}", unique_email("race"));
    let limiter: Arc<dyn Limiter> = Arc::new(link.limiter(&prefix));
    let rule = LockoutRule {
        threshold: 5,
        base: Duration::from_secs(30),
        max: Duration::from_secs(30),
        memory: Duration::from_secs(60),
        ceiling: 100,
        known_memory: Duration::from_secs(60),
    };
    let scope = AttemptScope {
        account: "acct:race",
        network: "192.0.2.1",
    };
    // 20 wrong guesses settle at once: exactly the threshold are counted before the lock.
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter
                    .settle_attempt(scope, false, &rule, Timestamp::now())
                    .await
            })
        })
        .collect();
    let mut counted = 0;
    for attempt in futures_join(attempts).await {
        if attempt? == Attempt::Allowed {
            counted += 1;
        }
    }
    assert_eq!(counted, 5);
    // And the right password, settled after them, is refused.
    assert!(matches!(
        limiter
            .settle_attempt(scope, true, &rule, Timestamp::now())
            .await,
        Attempt::Locked { .. }
    ));
    Ok(())
}

/// Request times are taken on arrival and attempts settle out of that order: the in-process
/// limiter (SQLite, PostgreSQL without Redis, the fallback during an outage) gives the verdicts
/// the Redis script gives, which follow the order of settling only.
#[tokio::test]
async fn the_memory_and_redis_limiters_agree_on_attempts_settled_out_of_order() -> TestResult {
    let Some(redis_url) = crate::helpers::test_server_url(
        "TEST_REDIS_URL",
        "the_memory_and_redis_limiters_agree_on_attempts_settled_out_of_order",
    ) else {
        return Ok(());
    };
    let link = RedisLink::open(&redis_url, None, "auth.v1").await?;
    // Reachable, so that the Redis limiter does not quietly fall back to memory.
    link.ping().await?;
    let redis = link.limiter(&format!("test:{}", unique_email("order")));
    let memory = MemoryLimiter::new();
    let rule = LockoutRule {
        threshold: 3,
        base: Duration::from_secs(30),
        max: Duration::from_secs(30),
        memory: Duration::from_secs(60),
        ceiling: 6,
        known_memory: Duration::from_secs(60),
    };
    let start = Timestamp::now();
    // (network, request time in ms after `start`, right password?, refused as locked?) in
    // settling order.
    let settled = [
        // The owner logs in from "d".
        ("d", 2, true, false),
        ("a", 50, false, false),
        ("a", 10, false, false),
        // A right password that arrived first: in, the network's count starts again, and the
        // network is known.
        ("a", 0, true, false),
        ("a", 40, false, false),
        ("a", 20, false, false),
        // The third failure locks the network, though two settled failures arrived after it.
        ("a", 30, false, false),
        ("a", 5, true, true),
        ("a", 1, false, true),
        ("a", 60, true, true),
        // Another network is not locked...
        ("b", 70, false, false),
        // ...until the account-wide ceiling (6 failures since the start) locks every network
        // but the known ones: "a" is still held by its own lock, "d" gets in.
        ("b", 80, true, true),
        ("c", 90, true, true),
        ("a", 100, true, true),
        ("d", 110, true, false),
    ];
    for (step, (network, arrival, succeeded, locked)) in settled.into_iter().enumerate() {
        let now = start.plus(Duration::from_millis(arrival));
        let scope = AttemptScope {
            account: "acct:order",
            network,
        };
        for (name, limiter) in [("memory", &memory as &dyn Limiter), ("redis", &redis)] {
            let attempt = limiter.settle_attempt(scope, succeeded, &rule, now).await;
            assert_eq!(
                matches!(attempt, Attempt::Locked { .. }),
                locked,
                "{name}, step {step}: {attempt:?}"
            );
        }
    }
    Ok(())
}

/// Redis unreachable: logins go on, and the limits hold in each replica's memory meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_limits_fall_back_to_this_process() -> TestResult {
    let Some((backend, upstream)) = postgres_and_redis("brute_force_redis_outage") else {
        return Ok(());
    };
    let proxy = CuttableProxy::start(host_port(&upstream)).await?;
    let through_proxy = format!("redis://{}", proxy.addr);
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.redis_url = Some(SecretString::new(through_proxy));
        lockout(
            settings,
            3,
            Duration::from_secs(30),
            Duration::from_secs(30),
        );
    })
    .await?;
    let email = unique_email("outage");
    app.register(&email).await?;
    proxy.cut();
    let started = Instant::now();
    login(&app, &email, PASSWORD).await?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for _ in 0..3 {
        wrong_guess(&app, &email).await;
    }
    assert_error(
        login(&app, &email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    proxy.restore();
    Ok(())
}
