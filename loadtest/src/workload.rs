//! The mixed workload and the checks made on every answer.
//!
//! Workers draw operations (login, logout, refresh, verify: remotely on a random replica, or with
//! the run's `LocalVerifier`) against the credentials in the [`Pool`]. Every answer is judged
//! against what the client knows: a credential whose revocation was acknowledged before a call
//! began must be refused (remotely at once; by a `LocalVerifier` within `local_bound`), a live
//! one accepted, the current refresh token of a session rotated. UNAVAILABLE is tolerated only
//! while the run says a fault is in force. An auditor task keeps re-presenting revoked
//! credentials, so a revocation forgotten later (after a restart, say) is caught too.
//!
//! This file holds the configuration, the [`Workload`] and its workers' loop (which operation to
//! draw, on which replica, with what deadline). The rest, by concern:
//! - `judge`: how an answer counts (a verification of a revoked credential that succeeds is a
//!   violation; which failures an outage excuses);
//! - `operations`: login, logout and refresh, and what each does to the pool;
//! - `audit`: the auditor that keeps re-presenting revoked credentials, and the final audit;
//! - `targeted`: the checks the fault runs make around one fault, outside the pool.

mod audit;
mod judge;
mod operations;
mod targeted;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use auth_api::{
    LocalVerifier,
    v1::{self as pb, auth_service_client::AuthServiceClient},
};
use tokio::{sync::watch, task::JoinHandle};
use tonic::{Request, Response, Status, transport::Channel};

use crate::{
    RunError,
    pool::{Credential, Entry, Pool},
    rng::Rng,
    stats::Recorder,
};

#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub auth: AuthServiceClient<Channel>,
}

#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent workers (closed loop when `rate` is 0).
    pub concurrency: usize,
    /// Operations per second over all workers; 0 for as fast as answers come.
    pub rate: u32,
    /// Each call's deadline (sent as `grpc-timeout` and enforced by the client).
    pub deadline: Duration,
    /// Shares of the operations, per mille; the rest are verifications.
    pub login_per_mille: u32,
    pub logout_per_mille: u32,
    pub refresh_per_mille: u32,
    /// Of the verifications of access tokens, the share done by the `LocalVerifier`.
    pub local_per_mille: u32,
    /// Of the logins, the share that ask for a session token instead of a token pair.
    pub session_per_mille: u32,
    /// How long after an acknowledged revocation a `LocalVerifier` may still accept the token.
    pub local_bound: Duration,
    pub password: String,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            rate: 0,
            deadline: Duration::from_secs(3),
            login_per_mille: 10,
            logout_per_mille: 10,
            refresh_per_mille: 100,
            local_per_mille: 300,
            session_per_mille: 300,
            local_bound: Duration::from_secs(2),
            password: "load test password 1".into(),
        }
    }
}

pub struct Workload {
    pub targets: Vec<Target>,
    pub verifier: Option<LocalVerifier>,
    pub pool: Pool,
    pub recorder: Arc<Recorder>,
    users: Vec<String>,
    config: WorkloadConfig,
}

impl Workload {
    pub fn new(
        targets: Vec<Target>,
        verifier: Option<LocalVerifier>,
        recorder: Arc<Recorder>,
        users: Vec<String>,
        config: WorkloadConfig,
    ) -> Self {
        Self {
            targets,
            verifier,
            pool: Pool::default(),
            recorder,
            users,
            config,
        }
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// Logs in (8 at a time) until the pool holds `sessions` credentials.
    pub async fn seed(self: &Arc<Self>, sessions: usize) -> Result<(), RunError> {
        let mut stream = 0;
        while self.pool.live_count() < sessions {
            let mut logins = tokio::task::JoinSet::new();
            for _ in 0..8 {
                stream += 1;
                let workload = Arc::clone(self);
                logins.spawn(async move { workload.login_once(&mut Rng::new(stream)).await });
            }
            while let Some(login) = logins.join_next().await {
                let (user, credential) = login??;
                self.pool.add(Entry::new(user, credential));
            }
        }
        Ok(())
    }

    /// Starts the workers and the auditor; they run until `stop` turns true.
    pub fn spawn(self: &Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks: Vec<JoinHandle<()>> = (0..self.config.concurrency)
            .map(|index| {
                let workload = Arc::clone(self);
                let stop = stop.clone();
                tokio::spawn(async move { workload.work(index as u64 + 1, stop).await })
            })
            .collect();
        let auditor = Arc::clone(self);
        tasks.push(tokio::spawn(async move { auditor.audit(stop).await }));
        tasks
    }

    async fn work(&self, stream: u64, stop: watch::Receiver<bool>) {
        let mut rng = Rng::new(stream);
        let mut pacing = (self.config.rate > 0).then(|| {
            let period = Duration::from_secs_f64(
                self.config.concurrency as f64 / f64::from(self.config.rate),
            );
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        while !*stop.borrow() {
            if let Some(interval) = pacing.as_mut() {
                interval.tick().await;
            }
            self.one_operation(&mut rng).await;
        }
    }

    async fn one_operation(&self, rng: &mut Rng) {
        let draw = rng.below(1000) as u32;
        let config = &self.config;
        if draw < config.login_per_mille {
            self.login(rng).await;
        } else if draw < config.login_per_mille + config.logout_per_mille {
            self.logout(rng).await;
        } else if draw < config.login_per_mille + config.logout_per_mille + config.refresh_per_mille
        {
            self.refresh(rng).await;
        } else if let Some(entry) = self.pool.pick_live(rng) {
            let credential = entry.credential();
            match (&credential, &self.verifier) {
                (Credential::Tokens { access, .. }, Some(verifier))
                    if rng.chance(config.local_per_mille) =>
                {
                    self.verify_local(verifier, &entry, access, "verify-local")
                        .await;
                }
                _ => {
                    let target = self.pick_target(rng);
                    self.verify_remote(target, &entry, &credential, "verify")
                        .await;
                }
            }
        }
    }

    fn pick_target(&self, rng: &mut Rng) -> &Target {
        &self.targets[rng.below(self.targets.len())]
    }

    /// A call with the run's deadline, timed.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> (Result<T, Status>, Duration) {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.config.deadline, call).await {
            Ok(result) => result.map(Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("client deadline")),
        };
        (result, started.elapsed())
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.config.deadline);
        request
    }
}

/// Registers `count` accounts (8 at a time) with `password`; returns their emails.
pub async fn register_users(
    client: &AuthServiceClient<Channel>,
    run_id: &str,
    count: usize,
    password: &str,
) -> Result<Vec<String>, RunError> {
    let emails: Vec<String> = (0..count)
        .map(|index| format!("load-{run_id}-{index}@example.com"))
        .collect();
    for chunk in emails.chunks(8) {
        let mut registrations = tokio::task::JoinSet::new();
        for email in chunk {
            let mut client = client.clone();
            let request = pb::RegisterRequest {
                email: email.clone(),
                password: password.to_owned(),
            };
            registrations.spawn(async move { client.register(request).await });
        }
        while let Some(registration) = registrations.join_next().await {
            registration??;
        }
    }
    Ok(emails)
}
