//! Load scenarios against a running auth service, each printing requests/s, latency percentiles
//! and the count of every outcome (h2load counts gRPC errors as successes; this counts statuses).
//! Closed loop: `concurrency` callers share `connections` HTTP/2 connections and each sends its
//! next call when the last one is answered. Tokens are many and distinct (users x refresh
//! chains), never one token hammered, except where a scenario says so.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use auth_api::v1::{
    self as pb, CredentialKind, auth_service_client::AuthServiceClient,
    login_response::Credential as LoginCredential,
};
use hdrhistogram::Histogram;
use tonic::{Status, transport::Channel};

use crate::{RunError, cluster::lazy_channel, rng::mix, stats::status_label, workload};

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

/// One scenario's result, also written as a JSON line for the charts.
#[derive(Clone, Debug)]
pub struct BenchRow {
    pub scenario: String,
    pub connections: usize,
    pub concurrency: usize,
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub outcomes: BTreeMap<String, u64>,
    /// CPU time (user + system, all threads) the service spent per call, when its pid was given.
    pub service_cpu_us: Option<f64>,
}

impl BenchRow {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    pub fn ok(&self) -> u64 {
        self.outcomes.get("OK").copied().unwrap_or(0)
    }

    pub fn errors(&self) -> u64 {
        self.requests - self.ok()
    }

    pub fn markdown_header() -> &'static str {
        "| scenario | connections | callers | requests | requests/s | p50 ms | p99 ms | p99.9 ms | max ms | service CPU µs/call | outcomes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    }

    pub fn markdown(&self) -> String {
        let outcomes = self
            .outcomes
            .iter()
            .map(|(label, count)| format!("{label} {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        let cpu = self
            .service_cpu_us
            .map_or_else(String::new, |micros| format!("{micros:.1}"));
        format!(
            "| {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {cpu} | {} |",
            self.scenario,
            self.connections,
            self.concurrency,
            self.requests,
            self.rate(),
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            outcomes
        )
    }

    pub fn json(&self) -> String {
        let outcomes = self
            .outcomes
            .iter()
            .map(|(label, count)| format!("{:?}:{count}", label))
            .collect::<Vec<_>>()
            .join(",");
        let cpu = self
            .service_cpu_us
            .map_or_else(|| "null".to_owned(), |micros| format!("{micros:.2}"));
        format!(
            "{{\"scenario\":{:?},\"connections\":{},\"concurrency\":{},\"requests\":{},\"seconds\":{:.3},\"rps\":{:.1},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"p999_ms\":{:.4},\"max_ms\":{:.4},\"service_cpu_us\":{cpu},\"outcomes\":{{{outcomes}}}}}",
            self.scenario,
            self.connections,
            self.concurrency,
            self.requests,
            self.seconds,
            self.rate(),
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms
        )
    }
}

/// Latencies and outcomes of one caller, merged at the end (no lock per call).
struct Tally {
    latency_us: Histogram<u64>,
    outcomes: BTreeMap<String, u64>,
}

impl Tally {
    #[allow(clippy::expect_used)] // constant bounds that hdrhistogram accepts
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            outcomes: BTreeMap::new(),
        }
    }

    fn record(&mut self, latency: Duration, outcome: Result<(), Status>) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_us.saturating_record(micros);
        let label = match outcome {
            Ok(()) => "OK".to_owned(),
            Err(status) => status_label(&status),
        };
        *self.outcomes.entry(label).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        for (label, count) in other.outcomes {
            *self.outcomes.entry(label).or_default() += count;
        }
    }
}

/// The callers' connections to the target.
pub struct Clients {
    channels: Vec<Channel>,
}

impl Clients {
    pub fn connect(target: &str, connections: usize) -> Result<Self, RunError> {
        let channels = (0..connections.max(1))
            .map(|_| lazy_channel(target))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { channels })
    }

    pub fn auth(&self, caller: usize) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channels[caller % self.channels.len()].clone())
    }

    pub fn channel(&self, caller: usize) -> Channel {
        self.channels[caller % self.channels.len()].clone()
    }
}

/// Runs `call(caller, iteration)` from `concurrency` callers for `warmup` (not counted), then
/// `duration`, or until `exhausted` turns true (a scenario that ran out of inputs: the call that
/// found out is not counted, and the row covers the time until then).
pub async fn closed_loop<F, Fut>(scenario: &str, config: &BenchConfig, call: F) -> BenchRow
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    closed_loop_until(scenario, config, call, Arc::new(AtomicBool::new(false))).await
}

pub async fn closed_loop_until<F, Fut>(
    scenario: &str,
    config: &BenchConfig,
    call: F,
    exhausted: Arc<AtomicBool>,
) -> BenchRow
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let measure_from = started + config.warmup;
    let end = measure_from + config.duration;
    let cpu_at_start = service_cpu_at(config.service_pid, measure_from);
    let callers: Vec<_> = (0..config.concurrency.max(1))
        .map(|caller| {
            let call = Arc::clone(&call);
            let exhausted = Arc::clone(&exhausted);
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut iteration = 0u64;
                let mut last = measure_from;
                loop {
                    let sent = Instant::now();
                    if sent >= end || exhausted.load(Ordering::Relaxed) {
                        break;
                    }
                    let outcome = call(caller, iteration).await;
                    iteration += 1;
                    if exhausted.load(Ordering::Relaxed) {
                        break;
                    }
                    if sent >= measure_from {
                        last = Instant::now();
                        tally.record(last - sent, outcome);
                    }
                }
                (tally, last)
            })
        })
        .collect();
    let mut total = Tally::new();
    let mut last = measure_from;
    for caller in callers {
        if let Ok((tally, caller_last)) = caller.await {
            total.merge(tally);
            last = last.max(caller_last);
        }
    }
    let seconds = if exhausted.load(Ordering::Relaxed) {
        last.saturating_duration_since(measure_from)
    } else {
        config.duration
    };
    let service_cpu_us = cpu_per_call(
        cpu_at_start.await.ok().flatten(),
        config.service_pid.and_then(service_cpu),
        total.latency_us.len(),
    );
    let ms = |micros: u64| micros as f64 / 1000.0;
    BenchRow {
        scenario: scenario.to_owned(),
        connections: config.connections,
        concurrency: config.concurrency,
        requests: total.latency_us.len(),
        seconds: seconds.as_secs_f64(),
        p50_ms: ms(total.latency_us.value_at_quantile(0.5)),
        p99_ms: ms(total.latency_us.value_at_quantile(0.99)),
        p999_ms: ms(total.latency_us.value_at_quantile(0.999)),
        max_ms: ms(total.latency_us.max()),
        outcomes: total.outcomes,
        service_cpu_us,
    }
}

/// The service's CPU time so far (user + system, every thread), from `/proc/<pid>/stat`.
pub fn service_cpu(pid: u32) -> Option<Duration> {
    // Linux reports these in USER_HZ ticks, 100 per second on every architecture it supports.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain numbers.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// Reads the service's CPU time once `at` has come (the start of a measured window).
fn service_cpu_at(pid: Option<u32>, at: Instant) -> tokio::task::JoinHandle<Option<Duration>> {
    tokio::spawn(async move {
        tokio::time::sleep_until(at.into()).await;
        pid.and_then(service_cpu)
    })
}

fn cpu_per_call(start: Option<Duration>, end: Option<Duration>, calls: u64) -> Option<f64> {
    let spent = end?.checked_sub(start?)?;
    (calls > 0).then(|| spent.as_secs_f64() * 1e6 / calls as f64)
}

/// Logins per second in the storm: on 2 cores argon2 hashes about 80 a second.
pub const STORM_LOGINS_PER_SECOND: u32 = 400;

/// Sends `call(i, i)` at `rate` per second for `warmup` + `duration`, without waiting for answers
/// (arrivals from many clients); counts the calls sent after the warm-up.
pub async fn open_loop<F, Fut>(scenario: &str, config: &BenchConfig, rate: u32, call: F) -> BenchRow
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    let started = Instant::now();
    let measure_from = started + config.warmup;
    let end = measure_from + config.duration;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let mut index = 0u64;
    loop {
        let sent = ticks.tick().await.into_std();
        if sent >= end {
            break;
        }
        let answer = call(index as usize, index);
        index += 1;
        calls.spawn(async move {
            let outcome = answer.await;
            (sent >= measure_from).then(|| (sent.elapsed(), outcome))
        });
    }
    let mut tally = Tally::new();
    while let Some(result) = calls.join_next().await {
        if let Ok(Some((latency, outcome))) = result {
            tally.record(latency, outcome);
        }
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    BenchRow {
        scenario: scenario.to_owned(),
        connections: 1,
        concurrency: 0,
        requests: tally.latency_us.len(),
        seconds: config.duration.as_secs_f64(),
        p50_ms: ms(tally.latency_us.value_at_quantile(0.5)),
        p99_ms: ms(tally.latency_us.value_at_quantile(0.99)),
        p999_ms: ms(tally.latency_us.value_at_quantile(0.999)),
        max_ms: ms(tally.latency_us.max()),
        outcomes: tally.outcomes,
        // The storm's cost is argon2's by design: not a per-call figure worth reporting.
        service_cpu_us: None,
    }
}

/// Credentials for the scenarios: users, one token-pair session and one session token each, and
/// `tokens` distinct access tokens minted by Refresh chains across the token sessions.
pub struct Credentials {
    pub emails: Vec<String>,
    pub access_tokens: Vec<String>,
    pub session_tokens: Vec<String>,
    /// The current refresh token of each token session, shared by every scenario that rotates.
    pub chains: Arc<Chains>,
}

impl Credentials {
    pub async fn mint(
        clients: &Clients,
        config: &BenchConfig,
        run_id: &str,
    ) -> Result<Self, RunError> {
        let emails =
            workload::register_users(&clients.auth(0), run_id, config.users, &config.password)
                .await?;
        let mut access_tokens = Vec::new();
        let mut refresh_tokens = Vec::new();
        let mut session_tokens = Vec::new();
        for (index, email) in emails.iter().enumerate() {
            let mut auth = clients.auth(index);
            for kind in [CredentialKind::Tokens, CredentialKind::Session] {
                let login = auth
                    .login(pb::LoginRequest {
                        email: email.clone(),
                        password: config.password.clone(),
                        kind: kind as i32,
                    })
                    .await?
                    .into_inner();
                match login.credential {
                    Some(LoginCredential::Tokens(pair)) => {
                        access_tokens.push(pair.access_token);
                        refresh_tokens.push(pair.refresh_token);
                    }
                    Some(LoginCredential::Session(session)) => {
                        session_tokens.push(session.session_token)
                    }
                    None => return Err("a login answered without a credential".into()),
                }
            }
        }
        let mut credentials = Self {
            emails,
            access_tokens,
            session_tokens,
            chains: Chains::new(refresh_tokens),
        };
        credentials
            .mint_access_tokens(clients, config.tokens)
            .await?;
        Ok(credentials)
    }

    /// Refreshes the sessions round-robin (each chain in its own task) until `count` distinct
    /// access tokens exist; every one of them stays valid until it expires.
    pub async fn mint_access_tokens(
        &mut self,
        clients: &Clients,
        count: usize,
    ) -> Result<(), RunError> {
        let chains = self.chains.len().max(1);
        let per_chain = count
            .saturating_sub(self.access_tokens.len())
            .div_ceil(chains);
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..chains {
            let mut auth = clients.auth(index);
            let chains = Arc::clone(&self.chains);
            tasks.spawn(async move {
                let mut minted = Vec::with_capacity(per_chain);
                for _ in 0..per_chain {
                    match chains.refresh(index, &mut auth).await {
                        Some(Ok(access)) => minted.push(access),
                        Some(Err(status)) => return Err(status),
                        None => break,
                    }
                }
                Ok::<_, Status>(minted)
            });
        }
        while let Some(chain) = tasks.join_next().await {
            self.access_tokens.extend(chain??);
        }
        Ok(())
    }
}

/// The token a caller presents at an iteration: callers walk the tokens from different offsets.
fn pick_token(tokens: &[String], caller: usize, iteration: u64) -> String {
    let index = (caller.wrapping_mul(7919) as u64).wrapping_add(iteration) as usize;
    tokens
        .get(index % tokens.len().max(1))
        .cloned()
        .unwrap_or_default()
}

pub fn verify_call(
    clients: &Clients,
    tokens: Arc<Vec<String>>,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    move |caller, iteration| {
        let mut client = clients[caller % clients.len()].clone();
        let token = pick_token(&tokens, caller, iteration);
        Box::pin(async move {
            client
                .verify(pb::VerifyRequest {
                    token,
                    audience: String::new(),
                })
                .await
                .map(|_| ())
        })
    }
}

/// Every call presents a token the service has not seen; when they run out, `exhausted` turns
/// true and the scenario ends there.
pub fn cold_verify_call(
    clients: &Clients,
    tokens: Arc<Vec<String>>,
    exhausted: Arc<AtomicBool>,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    move |caller, _| {
        let mut client = clients[caller % clients.len()].clone();
        let index = next.fetch_add(1, Ordering::Relaxed);
        let token = tokens.get(index).cloned();
        let exhausted = Arc::clone(&exhausted);
        Box::pin(async move {
            let Some(token) = token else {
                exhausted.store(true, Ordering::Relaxed);
                return Ok(());
            };
            client
                .verify(pb::VerifyRequest {
                    token,
                    audience: String::new(),
                })
                .await
                .map(|_| ())
        })
    }
}

pub fn markdown_table(rows: &[BenchRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", BenchRow::markdown_header());
    for row in rows {
        let _ = writeln!(out, "{}", row.markdown());
    }
    out
}

type Call = std::pin::Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// The scenarios `loadgen bench` knows, in the order it runs them.
pub const SCENARIOS: &[&str] = &[
    "health",
    "verify-access",
    "verify-session",
    "verify-cold",
    "refresh",
    "login",
    "mixed",
    "login-storm",
];

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

fn health_call(clients: &Clients) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| HealthClient::new(clients.channel(index)))
        .collect();
    move |caller, _| {
        let mut client = clients[caller % clients.len()].clone();
        Box::pin(async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| ())
        })
    }
}

/// Refresh chains: each chain (one session) is spent by one caller at a time.
pub struct Chains {
    current: Vec<std::sync::Mutex<String>>,
}

impl Chains {
    fn new(refresh_tokens: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            current: refresh_tokens
                .into_iter()
                .map(std::sync::Mutex::new)
                .collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// Spends chain `index`'s current token and returns the new access token; `None` when the
    /// chain is in use by another caller or retired (an earlier refresh of it failed).
    async fn refresh(
        &self,
        index: usize,
        client: &mut AuthServiceClient<Channel>,
    ) -> Option<Result<String, Status>> {
        let slot = self.current.get(index % self.current.len().max(1))?;
        let token = {
            let guard = slot.try_lock().ok()?;
            if guard.is_empty() {
                return None;
            }
            guard.clone()
        };
        let answer = client
            .refresh(pb::RefreshRequest {
                refresh_token: token,
            })
            .await
            .map(|response| response.into_inner().tokens);
        let mut guard = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(match answer {
            Ok(Some(pair)) => {
                *guard = pair.refresh_token;
                Ok(pair.access_token)
            }
            Ok(None) => Err(Status::internal("a refresh without tokens")),
            Err(status) => {
                // The chain's fate is unknown now: retire it.
                guard.clear();
                Err(status)
            }
        })
    }
}

fn refresh_call(
    clients: &Clients,
    credentials: &Credentials,
    callers: usize,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    let chains = Arc::clone(&credentials.chains);
    let callers = callers.max(1);
    let per_caller = (chains.len() / callers).max(1);
    move |caller, iteration| {
        let mut client = clients[caller % clients.len()].clone();
        let chains = Arc::clone(&chains);
        Box::pin(async move {
            // Caller c owns chains c, c + callers, c + 2 callers...: with at least as many
            // chains (users) as callers, no two callers ever spend the same chain.
            let index = caller + (iteration as usize % per_caller) * callers;
            match chains.refresh(index, &mut client).await {
                Some(outcome) => outcome.map(|_| ()),
                None => Err(Status::aborted("chain busy or retired")),
            }
        })
    }
}

fn login_call(
    clients: &Clients,
    config: &BenchConfig,
    credentials: &Credentials,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    let emails = Arc::new(credentials.emails.clone());
    let password = config.password.clone();
    move |caller, iteration| {
        let mut client = clients[caller % clients.len()].clone();
        let email = emails
            .get(mix((caller as u64) << 32 ^ iteration) as usize % emails.len().max(1))
            .cloned()
            .unwrap_or_default();
        let password = password.clone();
        Box::pin(async move {
            client
                .login(pb::LoginRequest {
                    email,
                    password,
                    kind: CredentialKind::Tokens as i32,
                })
                .await
                .map(|_| ())
        })
    }
}

fn mixed_call(
    clients: &Clients,
    config: &BenchConfig,
    credentials: &Credentials,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let login = login_call(clients, config, credentials);
    let refresh = refresh_call(clients, credentials, config.concurrency);
    let mut tokens = credentials.access_tokens.clone();
    tokens.extend(credentials.session_tokens.iter().cloned());
    let verify = verify_call(clients, Arc::new(tokens));
    move |caller, iteration| match mix((caller as u64) << 32 ^ iteration ^ 0x5eed) % 1000 {
        0..10 => login(caller, iteration),
        10..110 => refresh(caller, iteration),
        _ => verify(caller, iteration),
    }
}

/// For h2load, which sends one fixed body: a gRPC-framed `VerifyRequest` for one access token and
/// one session token (`verify-access.bin`, `verify-session.bin`), and the framed size of the
/// successful answer to each (`*.expect`), so the caller can tell OK answers from gRPC errors
/// (those are HTTP 200 too, but carry no message).
pub async fn write_h2load_bodies(
    config: &BenchConfig,
    dir: &std::path::Path,
) -> Result<(), RunError> {
    use prost::Message as _;
    let clients = Clients::connect(&config.target, 1)?;
    let run_id = format!(
        "h2load-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let one = BenchConfig::minimal(config.target.clone(), config.password.clone());
    let credentials = Credentials::mint(&clients, &one, &run_id).await?;
    std::fs::create_dir_all(dir)?;
    for (name, token) in [
        ("verify-access", credentials.access_tokens.first()),
        ("verify-session", credentials.session_tokens.first()),
    ] {
        let request = pb::VerifyRequest {
            token: token.cloned().ok_or("no token minted")?,
            audience: String::new(),
        };
        let answer = clients.auth(0).verify(request.clone()).await?.into_inner();
        std::fs::write(
            dir.join(format!("{name}.bin")),
            grpc_frame(&request.encode_to_vec()),
        )?;
        std::fs::write(
            dir.join(format!("{name}.expect")),
            format!("{}\n", 5 + answer.encoded_len()),
        )?;
    }
    Ok(())
}

/// The gRPC length-prefixed message: no compression flag, 4-byte big-endian length, bytes.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(message);
    frame
}

fn order_call(
    clients: &Clients,
    tokens: Arc<Vec<String>>,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    use demo_services::v1::{PlaceOrderRequest, order_service_client::OrderServiceClient};
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| OrderServiceClient::new(clients.channel(index)))
        .collect();
    move |caller, iteration| {
        let mut client = clients[caller % clients.len()].clone();
        let token = pick_token(&tokens, caller, iteration);
        Box::pin(async move {
            let mut request = tonic::Request::new(PlaceOrderRequest {
                item: "benchmark item".into(),
                amount_cents: 1_250,
            });
            let bearer = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("a token that is not a header value"))?;
            request.metadata_mut().insert("authorization", bearer);
            client.place_order(request).await.map(|_| ())
        })
    }
}
