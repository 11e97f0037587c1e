//! The mixed workload and the checks made on every answer.
//!
//! Workers draw operations (login, logout, refresh, verify: remotely on a random replica, or with
//! the run's `LocalVerifier`) against the credentials in the [`Pool`]. Every answer is judged
//! against what the client knows: a credential whose revocation was acknowledged before a call
//! began must be refused (remotely at once; by a `LocalVerifier` within `local_bound`), a live
//! one accepted, the current refresh token of a session rotated. UNAVAILABLE is tolerated only
//! while the run says a fault is in force. An auditor task keeps re-presenting revoked
//! credentials, so a revocation forgotten later (after a restart, say) is caught too.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use auth_api::{
    LocalVerifier, VerifyError,
    v1::{
        self as pb, CredentialKind, auth_service_client::AuthServiceClient,
        login_response::Credential as LoginCredential,
    },
};
use tokio::{sync::watch, task::JoinHandle};
use tonic::{Code, Request, Response, Status, transport::Channel};
use tonic_types::StatusExt;

use crate::{
    RunError,
    pool::{Credential, Entry, Fate, Pool},
    rng::Rng,
    stats::{Class, Recorder, status_label},
};

/// The one message the auth service gives for an unavailable dependency.
const UNAVAILABLE_MESSAGE: &str = "the service is temporarily unavailable; retry later";

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

    /// How a failure that is not a refusal of the credential counts.
    fn failure_class(&self, op: &str, target: &str, status: &Status) -> Class {
        if status.code() == Code::Internal {
            self.recorder.violation(format!(
                "{op} on {target}: INTERNAL ({:?})",
                status.message()
            ));
            return Class::Unexpected;
        }
        if status.code() == Code::Unavailable
            && status.get_details_error_info().is_some()
            && status.message() != UNAVAILABLE_MESSAGE
        {
            self.recorder.violation(format!(
                "{op} on {target}: UNAVAILABLE with a message other than the fixed one: {:?}",
                status.message()
            ));
            return Class::Unexpected;
        }
        match status.code() {
            Code::ResourceExhausted => Class::Shed,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
                if self.recorder.in_outage() =>
            {
                Class::Tolerated
            }
            // tonic's own word for a call whose connection broke mid-flight (gRPC-Go and
            // grpcio say UNAVAILABLE); the auth service never answers UNKNOWN itself.
            Code::Unknown
                if status.get_details_error_info().is_none() && self.recorder.in_outage() =>
            {
                Class::Tolerated
            }
            _ => Class::Unexpected,
        }
    }

    async fn verify_remote(
        &self,
        target: &Target,
        entry: &Arc<Entry>,
        credential: &Credential,
        op: &'static str,
    ) {
        let op = match (op, credential) {
            ("verify", Credential::Tokens { .. }) => "verify-access",
            ("verify", Credential::Session { .. }) => "verify-session",
            (other, _) => other,
        };
        let started = Instant::now();
        let request = self.request(pb::VerifyRequest {
            token: credential.bearer().to_owned(),
            audience: String::new(),
        });
        let (result, latency) = self.call(target.auth.clone().verify(request)).await;
        match result {
            Ok(_) => match entry.revoked_before(started) {
                Some(at) => {
                    self.recorder.violation(format!(
                        "{op} on {}: accepted a credential whose revocation was acknowledged {:.1} ms before the call",
                        target.name,
                        started.duration_since(at).as_secs_f64() * 1000.0
                    ));
                    self.recorder
                        .record(op, "OK after revocation", Class::Unexpected, latency);
                }
                None => self.recorder.record(op, "OK", Class::Ok, latency),
            },
            Err(status) if status.code() == Code::Unauthenticated => {
                let class = if entry.fate() == Fate::Live {
                    Class::Unexpected
                } else {
                    Class::Expected
                };
                self.recorder
                    .record(op, &status_label(&status), class, latency);
            }
            Err(status) => {
                let class = self.failure_class(op, &target.name, &status);
                self.recorder
                    .record(op, &status_label(&status), class, latency);
            }
        }
    }

    async fn verify_local(
        &self,
        verifier: &LocalVerifier,
        entry: &Arc<Entry>,
        access: &str,
        op: &'static str,
    ) {
        let started = Instant::now();
        let result = verifier.verify_token(access).await;
        let latency = started.elapsed();
        match result {
            Ok(_) => match entry.revoked_before(started) {
                Some(at) => {
                    let after = started.duration_since(at);
                    if after > self.config.local_bound {
                        self.recorder.violation(format!(
                            "{op}: the LocalVerifier accepted a token {:.1} ms after its revocation was acknowledged (allowed: {:?})",
                            after.as_secs_f64() * 1000.0,
                            self.config.local_bound
                        ));
                        self.recorder
                            .record(op, "OK after revocation", Class::Unexpected, latency);
                    } else {
                        self.recorder.local_acceptance_after_ack(after);
                        self.recorder.record(
                            op,
                            "OK, revocation in flight",
                            Class::Expected,
                            latency,
                        );
                    }
                }
                None => self.recorder.record(op, "OK", Class::Ok, latency),
            },
            Err(error @ (VerifyError::Revoked | VerifyError::Invalid | VerifyError::Expired)) => {
                let class = if entry.fate() == Fate::Live {
                    Class::Unexpected
                } else {
                    Class::Expected
                };
                self.recorder
                    .record(op, &local_label(&error), class, latency);
            }
            Err(VerifyError::Unavailable) if self.recorder.in_outage() => {
                self.recorder
                    .record(op, "UNAVAILABLE", Class::Tolerated, latency);
            }
            Err(error) => {
                self.recorder
                    .record(op, &local_label(&error), Class::Unexpected, latency)
            }
        }
    }

    async fn login(&self, rng: &mut Rng) {
        let started = Instant::now();
        match self.login_once(rng).await {
            Ok((user, credential)) => {
                self.pool.add(Entry::new(user, credential));
                self.recorder
                    .record("login", "OK", Class::Ok, started.elapsed());
            }
            Err(status) => {
                let class = self.failure_class("login", "a replica", &status);
                self.recorder
                    .record("login", &status_label(&status), class, started.elapsed());
            }
        }
    }

    async fn login_once(&self, rng: &mut Rng) -> Result<(usize, Credential), Status> {
        let user = rng.below(self.users.len());
        let kind = if rng.chance(self.config.session_per_mille) {
            CredentialKind::Session
        } else {
            CredentialKind::Tokens
        };
        let request = self.request(pb::LoginRequest {
            email: self.users[user].clone(),
            password: self.config.password.clone(),
            kind: kind as i32,
        });
        let target = self.pick_target(rng);
        let (result, _) = self.call(target.auth.clone().login(request)).await;
        let credential = match result?.credential {
            Some(LoginCredential::Tokens(pair)) => Credential::Tokens {
                access: pair.access_token,
                refresh: pair.refresh_token,
            },
            Some(LoginCredential::Session(session)) => Credential::Session {
                token: session.session_token,
            },
            None => return Err(Status::internal("a login answered without a credential")),
        };
        Ok((user, credential))
    }

    async fn logout(&self, rng: &mut Rng) {
        let Some(entry) = self.pool.claim_live(rng) else {
            return;
        };
        let credential = entry.credential();
        entry.set_fate(Fate::Revoking);
        let target = self.pick_target(rng);
        let request = self.request(pb::LogoutRequest {
            token: credential.bearer().to_owned(),
        });
        let (result, latency) = self.call(target.auth.clone().logout(request)).await;
        self.pool.retire(&entry);
        match result {
            Ok(_) => {
                entry.set_fate(Fate::Revoked(Instant::now()));
                self.pool.add_revoked(Arc::clone(&entry));
                self.recorder.record("logout", "OK", Class::Ok, latency);
            }
            Err(status) => {
                // The revocation may or may not have happened: assert nothing more about it.
                entry.set_fate(Fate::Unknown);
                let class = if status.code() == Code::Unauthenticated {
                    Class::Unexpected
                } else {
                    self.failure_class("logout", &target.name, &status)
                };
                self.recorder
                    .record("logout", &status_label(&status), class, latency);
            }
        }
        entry.release();
    }

    async fn refresh(&self, rng: &mut Rng) {
        let Some(entry) = self.claim_token_pair(rng) else {
            return;
        };
        let Credential::Tokens { refresh, .. } = entry.credential() else {
            entry.release();
            return;
        };
        let target = self.pick_target(rng);
        self.refresh_entry(target, &entry, refresh, "refresh").await;
        entry.release();
    }

    fn claim_token_pair(&self, rng: &mut Rng) -> Option<Arc<Entry>> {
        for _ in 0..4 {
            let entry = self.pool.claim_live(rng)?;
            if matches!(entry.credential(), Credential::Tokens { .. }) {
                return Some(entry);
            }
            entry.release();
        }
        None
    }

    /// Spends `refresh` (the entry's current refresh token) on `target`. A refusal means an
    /// acknowledged rotation was lost: the token was the session's current one.
    async fn refresh_entry(
        &self,
        target: &Target,
        entry: &Arc<Entry>,
        refresh: String,
        op: &'static str,
    ) -> bool {
        let request = self.request(pb::RefreshRequest {
            refresh_token: refresh,
        });
        let (result, latency) = self.call(target.auth.clone().refresh(request)).await;
        match result.map(|response| response.tokens) {
            Ok(Some(pair)) => {
                entry.replace_credential(Credential::Tokens {
                    access: pair.access_token,
                    refresh: pair.refresh_token,
                });
                self.recorder.record(op, "OK", Class::Ok, latency);
                true
            }
            Ok(None) => {
                self.recorder
                    .violation(format!("{op} on {}: OK without tokens", target.name));
                false
            }
            Err(status) => {
                self.pool.retire(&entry.clone());
                entry.set_fate(Fate::Unknown);
                let class = if status.code() == Code::Unauthenticated {
                    self.recorder.violation(format!(
                        "{op} on {}: the current refresh token of a live session was refused ({}): an acknowledged rotation was lost",
                        target.name,
                        status_label(&status)
                    ));
                    Class::Unexpected
                } else {
                    self.failure_class(op, &target.name, &status)
                };
                self.recorder
                    .record(op, &status_label(&status), class, latency);
                false
            }
        }
    }

    /// Keeps presenting credentials whose revocation was acknowledged, to every kind of verifier.
    async fn audit(&self, stop: watch::Receiver<bool>) {
        let mut rng = Rng::new(u64::MAX);
        while !*stop.borrow() {
            let Some(entry) = self.pool.pick_revoked(&mut rng) else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let credential = entry.credential();
            let target = self.pick_target(&mut rng);
            self.verify_remote(target, &entry, &credential, "audit-remote")
                .await;
            if let (Credential::Tokens { access, .. }, Some(verifier)) =
                (&credential, &self.verifier)
            {
                self.verify_local(verifier, &entry, access, "audit-local")
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// After the load: every revoked credential is refused by every replica and the verifier, and
    /// every live one still works (its refresh token rotates).
    pub async fn final_audit(&self) {
        for entry in self.pool.all_revoked() {
            let credential = entry.credential();
            for target in &self.targets {
                self.verify_remote(target, &entry, &credential, "final: revoked, remote")
                    .await;
            }
            if let (Credential::Tokens { access, .. }, Some(verifier)) =
                (&credential, &self.verifier)
            {
                self.verify_local(verifier, &entry, access, "final: revoked, local")
                    .await;
            }
        }
        let mut rng = Rng::new(7);
        for entry in self.pool.all_live() {
            let target = self.pick_target(&mut rng);
            match entry.credential() {
                Credential::Tokens { refresh, .. } => {
                    self.refresh_entry(target, &entry, refresh, "final: live, refresh")
                        .await;
                }
                credential @ Credential::Session { .. } => {
                    self.verify_remote(target, &entry, &credential, "final: live, verify")
                        .await;
                }
            }
        }
    }

    /// Targeted checks (the fault runs): a fresh credential on `target`, outside the pool.
    pub async fn fresh_token_pair(&self, target: &Target) -> Result<Arc<Entry>, RunError> {
        let request = self.request(pb::LoginRequest {
            email: self.users.first().ok_or("no users")?.clone(),
            password: self.config.password.clone(),
            kind: CredentialKind::Tokens as i32,
        });
        let (result, _) = self.call(target.auth.clone().login(request)).await;
        match result?.credential {
            Some(LoginCredential::Tokens(pair)) => Ok(Entry::new(
                0,
                Credential::Tokens {
                    access: pair.access_token,
                    refresh: pair.refresh_token,
                },
            )),
            _ => Err("a token login answered without a token pair".into()),
        }
    }

    pub async fn logout_on(&self, target: &Target, entry: &Arc<Entry>) -> Result<(), Status> {
        entry.set_fate(Fate::Revoking);
        let request = self.request(pb::LogoutRequest {
            token: entry.credential().bearer().to_owned(),
        });
        let (result, _) = self.call(target.auth.clone().logout(request)).await;
        match result {
            Ok(_) => {
                entry.set_fate(Fate::Revoked(Instant::now()));
                self.pool.add_revoked(Arc::clone(entry));
                Ok(())
            }
            Err(status) => {
                entry.set_fate(Fate::Unknown);
                Err(status)
            }
        }
    }

    /// Rotates `entry`'s refresh token on `target`; returns the token it replaced.
    pub async fn rotate_on(&self, target: &Target, entry: &Arc<Entry>) -> Result<String, RunError> {
        let Credential::Tokens { refresh, .. } = entry.credential() else {
            return Err("not a token pair".into());
        };
        if self
            .refresh_entry(target, entry, refresh.clone(), "targeted refresh")
            .await
        {
            Ok(refresh)
        } else {
            Err(format!("the refresh on {} failed", target.name).into())
        }
    }

    /// Checks of one credential right after a fault: remote on `target`, then local.
    pub async fn check_refused_everywhere(
        &self,
        target: &Target,
        entry: &Arc<Entry>,
        op: &'static str,
    ) {
        let credential = entry.credential();
        self.verify_remote(target, entry, &credential, op).await;
        if let (Credential::Tokens { access, .. }, Some(verifier)) = (&credential, &self.verifier) {
            let deadline = Instant::now() + self.config.local_bound;
            // Within the bound the feed may still be carrying the news; past it, refusal or bust.
            while verifier.verify_token(access).await.is_ok() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.verify_local(verifier, entry, access, op).await;
        }
    }

    /// Spends a refresh token that was rotated away: it must be refused (and kill the session).
    pub async fn check_old_refresh_refused(&self, target: &Target, old_refresh: String) {
        let request = self.request(pb::RefreshRequest {
            refresh_token: old_refresh,
        });
        let (result, latency) = self.call(target.auth.clone().refresh(request)).await;
        match result {
            Ok(_) => {
                self.recorder.violation(format!(
                    "a rotated-away refresh token was accepted again by {}",
                    target.name
                ));
                self.recorder
                    .record("replayed refresh", "OK", Class::Unexpected, latency);
            }
            Err(status) if status.code() == Code::Unauthenticated => {
                self.recorder.record(
                    "replayed refresh",
                    &status_label(&status),
                    Class::Expected,
                    latency,
                );
            }
            Err(status) => {
                let class = self.failure_class("replayed refresh", &target.name, &status);
                self.recorder
                    .record("replayed refresh", &status_label(&status), class, latency);
            }
        }
    }
}

fn local_label(error: &VerifyError) -> String {
    match error {
        VerifyError::Missing => "CREDENTIAL_MISSING".into(),
        VerifyError::Invalid => "TOKEN_INVALID".into(),
        VerifyError::Expired => "TOKEN_EXPIRED".into(),
        VerifyError::Revoked => "SESSION_REVOKED".into(),
        VerifyError::MissingRole => "MISSING_ROLE".into(),
        VerifyError::Unavailable => "UNAVAILABLE".into(),
        VerifyError::Remote(status) => status_label(status),
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
