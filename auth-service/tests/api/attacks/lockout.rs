//! A lockout an attacker cannot turn against the owner (NIST SP 800-63B section 5.2.2, ASVS 5.0
//! 6.3.1): failures lock the account for the client network they come from, so the owner logs
//! in from theirs while an attacker elsewhere keeps failing; failures from every network together
//! meet an account-wide ceiling, which locks all but the networks the owner logged in from, for
//! a while only. The test client is a trusted proxy, and each "network" a forwarded address.

use std::time::Duration;

use tonic::Code;

use super::{login_from, stored_session_count};
use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, unique_email,
};

on_both_backends!(
    an_attacker_failing_from_one_address_cannot_lock_the_owner_out_from_another,
    a_distributed_attack_meets_the_account_wide_ceiling_for_a_while_only,
);

const ATTACKER: &str = "198.51.100.66";
const OWNER: &str = "203.0.113.10";

async fn an_attacker_failing_from_one_address_cannot_lock_the_owner_out_from_another(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.trusted_proxies = "127.0.0.1/32".parse().expect("a block");
        settings.account_lockout_threshold = 3;
        settings.account_lockout_base = Duration::from_secs(60);
        settings.account_lockout_max = Duration::from_secs(60);
    })
    .await?;
    let email = unique_email("victim");
    let user_id = app.register(&email).await?;
    // The attacker keeps failing, well past the lock.
    for n in 0..10 {
        assert_error(
            login_from(&app, ATTACKER, &email, &format!("guess {n}")).await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    // Locked for the attacker's network, even with the right password...
    assert_error(
        login_from(&app, ATTACKER, &email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    assert_eq!(stored_session_count(&app, &user_id).await?, 0);
    // ...but the owner, from another address, logs in.
    login_from(&app, OWNER, &email, PASSWORD).await?;
    assert_eq!(stored_session_count(&app, &user_id).await?, 1);
    Ok(())
}

async fn a_distributed_attack_meets_the_account_wide_ceiling_for_a_while_only(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.trusted_proxies = "127.0.0.1/32".parse().expect("a block");
        settings.account_lockout_threshold = 3;
        settings.account_lockout_ceiling = 6;
        settings.account_lockout_base = Duration::from_secs(2);
        settings.account_lockout_max = Duration::from_secs(2);
    })
    .await?;
    let email = unique_email("distributed");
    let user_id = app.register(&email).await?;
    // The owner logged in from home before the attack.
    login_from(&app, OWNER, &email, PASSWORD).await?;
    // Two guesses from each of three networks: none reaches its own threshold.
    for network in 1..=3 {
        for n in 0..2 {
            assert_error(
                login_from(
                    &app,
                    &format!("198.51.100.{network}"),
                    &email,
                    &format!("g{n}"),
                )
                .await,
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            );
        }
    }
    // The ceiling is reached: the right password from any new network is refused...
    assert_error(
        login_from(&app, "192.0.2.50", &email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    assert_eq!(stored_session_count(&app, &user_id).await?, 1);
    // ...but not from the owner's known one.
    login_from(&app, OWNER, &email, PASSWORD).await?;
    // The lock is temporary: afterwards a new network gets in again.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    login_from(&app, "192.0.2.50", &email, PASSWORD).await?;
    assert_eq!(stored_session_count(&app, &user_id).await?, 3);
    Ok(())
}
