//! Load scenarios against a running auth service, each printing requests/s, latency percentiles
//! and the count of every outcome (h2load counts gRPC errors as successes; this counts statuses).
//! Closed loop: `concurrency` callers share `connections` HTTP/2 connections and each sends its
//! next call when the last one is answered. Tokens are many and distinct (users x refresh
//! chains), never one token hammered, except where a scenario says so.
//!
//! This file holds the run (the scenarios in order, each a closed or open loop over one kind of
//! call) and its configuration. The parts it puts together:
//! - `measure`: the loops that time calls and the rows they produce ([`BenchRow`], the Markdown
//!   table, the service's CPU time per call);
//! - `calls`: the connections ([`Clients`]) and one call builder per scenario;
//! - `credentials`: the users and tokens minted before the scenarios ([`Credentials`], [`Chains`]);
//! - `storms`: one load beside another (`Verify` during a refresh storm);
//! - `h2load`: the request bodies `loadgen h2load-bodies` writes for h2load.

mod calls;
mod credentials;
mod h2load;
mod measure;
mod open_loop;
mod storms;

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use crate::RunError;

pub use self::calls::{Clients, cold_verify_call, verify_call};
use self::calls::{health_call, login_call, mixed_call, mixed_open_call, order_call, refresh_call};
pub use self::credentials::{Chains, Credentials};
pub use self::h2load::write_h2load_bodies;
pub use self::measure::{BenchRow, closed_loop, closed_loop_until, markdown_table, service_cpu};
pub use self::open_loop::{open_loop, open_loop_by_operation};

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub target: String,
    pub connections: usize,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Users to register (and log in) for the token scenarios.
    pub users: usize,
    /// Distinct access tokens minted (Refresh chains over the users' sessions).
    pub tokens: usize,
    pub password: String,
    /// order-service, for the `order` scenario (the demo path: order-service calls `Verify`
    /// and `ExchangeToken`, payment-service checks the exchanged token locally).
    pub order_target: Option<String>,
    /// The service's process, to measure its CPU time per call.
    pub service_pid: Option<u32>,
}

impl BenchConfig {
    /// One caller and one user, for what needs only a token or two (the h2load bodies).
    pub fn minimal(target: String, password: String) -> Self {
        Self {
            target,
            connections: 1,
            concurrency: 1,
            duration: Duration::ZERO,
            warmup: Duration::ZERO,
            users: 1,
            tokens: 1,
            password,
            order_target: None,
            service_pid: None,
        }
    }
}

/// Logins per second in the storm: on 2 cores argon2 hashes about 80 a second.
pub const STORM_LOGINS_PER_SECOND: u32 = 400;

/// The scenarios `loadgen bench` knows, in the order it runs them.
pub const SCENARIOS: &[&str] = &[
    "health",
    "verify-access",
    "verify-session",
    "verify-cold",
    "refresh",
    "login",
    "mixed",
    "mixed-open",
    "login-storm",
    "refresh-storm",
];

/// The loads of `mixed-open`, in percent of the capacity the closed loop measured first.
pub const OPEN_LOOP_LOADS: [u32; 3] = [50, 70, 90];

/// Runs `scenarios` against `config.target`; prints each row as it finishes.
pub async fn run(
    config: &BenchConfig,
    scenarios: &[String],
    cold_tokens: usize,
) -> Result<Vec<BenchRow>, RunError> {
    let clients = Clients::connect(&config.target, config.connections)?;
    let run_id = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    eprintln!(
        "minting: {} users, {} access tokens by Refresh chains...",
        config.users, config.tokens
    );
    let minting = Instant::now();
    let mut credentials = Credentials::mint(&clients, config, &run_id).await?;
    eprintln!("minted in {:.1} s", minting.elapsed().as_secs_f64());
    let mut rows = Vec::new();
    for scenario in scenarios {
        let row = match scenario.as_str() {
            "health" => closed_loop("health (empty handler)", config, health_call(&clients)).await,
            "verify-access" => {
                let tokens = Arc::new(credentials.access_tokens.clone());
                closed_loop("verify-access", config, verify_call(&clients, tokens)).await
            }
            "verify-session" => {
                let tokens = Arc::new(credentials.session_tokens.clone());
                closed_loop("verify-session", config, verify_call(&clients, tokens)).await
            }
            "verify-cold" => {
                let before = credentials.access_tokens.len();
                let started = Instant::now();
                credentials
                    .mint_access_tokens(&clients, before + cold_tokens)
                    .await?;
                let fresh = Arc::new(credentials.access_tokens[before..].to_vec());
                eprintln!(
                    "minted {} unseen tokens in {:.1} s ({:.0} refreshes/s)",
                    fresh.len(),
                    started.elapsed().as_secs_f64(),
                    fresh.len() as f64 / started.elapsed().as_secs_f64()
                );
                let mut cold = config.clone();
                // Every call must present an unseen token, warm-up included.
                cold.warmup = Duration::ZERO;
                let exhausted = Arc::new(AtomicBool::new(false));
                let call = cold_verify_call(&clients, fresh, Arc::clone(&exhausted));
                closed_loop_until("verify-cold", &cold, call, exhausted).await
            }
            "refresh" => {
                closed_loop(
                    "refresh",
                    config,
                    refresh_call(&clients, &credentials, config.concurrency),
                )
                .await
            }
            "login" => {
                closed_loop("login", config, login_call(&clients, config, &credentials)).await
            }
            "mixed" => {
                closed_loop(
                    "mixed (1% login, 10% refresh, 89% verify)",
                    config,
                    mixed_call(&clients, config, &credentials),
                )
                .await
            }
            "mixed-open" => {
                // Capacity first (closed loop, callers as configured), then arrivals at fixed
                // shares of it, each operation timed from when it was due.
                let capacity = closed_loop(
                    "mixed-open: capacity (closed loop)",
                    config,
                    mixed_call(&clients, config, &credentials),
                )
                .await;
                println!("{}", capacity.markdown());
                let full = capacity.rate();
                rows.push(capacity);
                let mut last = None;
                for percent in OPEN_LOOP_LOADS {
                    let rate = (full * f64::from(percent) / 100.0).max(1.0) as u32;
                    let call = mixed_open_call(&clients, config, &credentials);
                    let scenario = format!("mixed-open {percent}% ({rate}/s)");
                    for row in open_loop_by_operation(&scenario, config, rate, call).await {
                        if let Some(previous) = last.replace(row) {
                            println!("{}", previous.markdown());
                            rows.push(previous);
                        }
                    }
                }
                last.ok_or("mixed-open measured nothing")?
            }
            "order" => {
                let target = config
                    .order_target
                    .as_deref()
                    .ok_or("the order scenario needs --order-target")?;
                let orders = Clients::connect(target, config.connections)?;
                let tokens = Arc::new(credentials.access_tokens.clone());
                let call = order_call(&orders, tokens);
                closed_loop(
                    "order (PlaceOrder: Verify, ExchangeToken, Charge)",
                    config,
                    call,
                )
                .await
            }
            "login-storm" => {
                // Verify as in verify-access while logins arrive at `STORM_LOGINS_PER_SECOND`,
                // several times what argon2 can hash, whatever the answers (many clients).
                let storm = config.clone();
                let storm_clients = Clients::connect(&config.target, 1)?;
                let logins = login_call(&storm_clients, config, &credentials);
                let storm_task = tokio::spawn(async move {
                    open_loop(
                        &format!("login-storm: logins arriving at {STORM_LOGINS_PER_SECOND}/s"),
                        &storm,
                        STORM_LOGINS_PER_SECOND,
                        logins,
                    )
                    .await
                });
                let tokens = Arc::new(credentials.access_tokens.clone());
                let verify = closed_loop(
                    "login-storm: verify-access",
                    config,
                    verify_call(&clients, tokens),
                )
                .await;
                let logins = storm_task.await?;
                println!("{}", logins.markdown());
                rows.push(logins);
                verify
            }
            "refresh-storm" => {
                storms::refresh_storm(&clients, config, &credentials, &mut rows).await?
            }
            other => {
                return Err(format!(
                    "unknown scenario {other:?}; known: {}",
                    SCENARIOS.join(", ")
                )
                .into());
            }
        };
        println!("{}", row.markdown());
        rows.push(row);
    }
    Ok(rows)
}
