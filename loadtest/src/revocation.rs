//! `revocation-bench`: how long a logout takes to reach a [`LocalVerifier`], with its settings.
//!
//! Auth-service replicas run in this process: one on SQLite, or two (A and B) sharing PostgreSQL
//! and Redis. The verifier's feed comes from A; logins and logouts go to B (the same replica in
//! the SQLite mode). For each of N users, one at a time: check that the verifier accepts the
//! user's access token, send Logout, and meanwhile verify the token again after every feed event
//! the verifier applies, until it answers SESSION_REVOKED. The measured interval runs from just
//! before Logout is sent to that refusal. It includes the auth service's work on Logout (the
//! revocation is committed to the database before it is announced) but not the Logout answer's
//! trip back, which is measured on its own.

mod deployment;
mod report;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_api::{
    LocalVerifier, LocalVerifierConfig, VerifyError,
    v1::{
        CredentialKind, LoginRequest, LogoutRequest, RegisterRequest,
        auth_service_client::AuthServiceClient, login_response::Credential,
    },
};
use clap::Parser;
use demo_services::{server::lazy_channel, stack::StackError};
use tonic::{Status, transport::Channel};

use self::deployment::Deployment;
pub use self::report::{BenchReport, Mode, Summary, render};

const PASSWORD: &str = "correct horse battery staple";

/// `revocation-bench`'s command line.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "revocation-bench",
    version,
    about = "Logs in N users, logs each out and measures when a LocalVerifier rejects its token"
)]
pub struct BenchSettings {
    /// How many users (one session each) to log in and out.
    #[arg(long, env = "BENCH_COUNT", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,

    /// PostgreSQL base URL: run two replicas (A feeds the verifier, B revokes) sharing it. Needs
    /// --redis too. A fresh schema is created for the run and dropped after it.
    #[arg(long = "postgres", env = "TEST_DATABASE_URL", requires = "redis_url")]
    pub postgres_url: Option<String>,

    /// Redis URL for the replicas' revocation fan-out. Needs --postgres too.
    #[arg(long = "redis", env = "TEST_REDIS_URL", requires = "postgres_url")]
    pub redis_url: Option<String>,

    /// Give up on one revocation after this long.
    #[arg(long, env = "BENCH_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Logins made at once while preparing (each costs one argon2 hash, twice with Register).
    #[arg(long, env = "BENCH_LOGIN_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub login_concurrency: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot create a temporary directory: {0}")]
    TempDir(std::io::Error),
    #[error("cannot prepare the PostgreSQL schema: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error(transparent)]
    Start(#[from] StackError),
    #[error("the LocalVerifier did not connect: {0}")]
    Verifier(Status),
    #[error("{call} failed: {status}")]
    Rpc { call: &'static str, status: Status },
    #[error("user {index}: the verifier refused the access token before the logout: {error}")]
    NotAcceptedBefore { index: usize, error: VerifyError },
    #[error("login task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs the benchmark; `progress` receives a line now and then.
pub async fn run(
    settings: &BenchSettings,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<BenchReport, BenchError> {
    let deployment = Deployment::start(settings).await?;
    let outcome = measure(&deployment, settings, progress).await;
    deployment.stop().await;
    outcome
}

async fn measure(
    deployment: &Deployment,
    settings: &BenchSettings,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<BenchReport, BenchError> {
    let verifier = LocalVerifier::connect(
        lazy_channel(&deployment.feed.url),
        LocalVerifierConfig::new("api"),
    )
    .await
    .map_err(BenchError::Verifier)?;
    let auth = AuthServiceClient::new(deployment.revoker_channel());

    let count = usize::try_from(settings.count).unwrap_or(usize::MAX);
    progress(&format!("logging in {count} users..."));
    let started = Instant::now();
    let tokens = log_in(&auth, count, settings.login_concurrency).await?;
    let login_time = started.elapsed();
    progress(&format!(
        "logged in {count} users in {:.1} s; logging them out one at a time",
        login_time.as_secs_f64()
    ));

    let mut report = BenchReport {
        mode: deployment.mode.clone(),
        users: count,
        login_time,
        revocation: Vec::with_capacity(count),
        logout_call: Vec::with_capacity(count),
        refused_before_logout_answered: 0,
        feed_events_waited: 0,
        timeouts: 0,
        other_refusals: Vec::new(),
    };
    for (index, token) in tokens.iter().enumerate() {
        verifier
            .verify_token(token)
            .await
            .map_err(|error| BenchError::NotAcceptedBefore { index, error })?;
        // The verifier is watched while Logout is in flight: the feed may deliver the
        // revocation before the Logout answer arrives.
        let sent = Instant::now();
        let deadline = tokio::time::Instant::from_std(sent + settings.timeout);
        let logout = async {
            let result = auth
                .clone()
                .logout(LogoutRequest {
                    token: token.clone(),
                })
                .await;
            (result, sent.elapsed())
        };
        let ((logout, logout_took), watched) =
            tokio::join!(logout, until_refused(&verifier, token, deadline));
        logout.map_err(|status| BenchError::Rpc {
            call: "Logout",
            status,
        })?;
        report.logout_call.push(logout_took);
        report.feed_events_waited += watched.feed_events;
        match watched.outcome {
            Watched::Refused => {
                let refused_after = watched.at.duration_since(sent);
                report.revocation.push(refused_after);
                report.refused_before_logout_answered += usize::from(refused_after < logout_took);
            }
            Watched::StillAccepted => report.timeouts += 1,
            Watched::RefusedOtherwise(error) => {
                report.other_refusals.push(format!("user {index}: {error}"));
            }
        }
        if (index + 1) % 100 == 0 {
            progress(&format!("{} of {count} logged out", index + 1));
        }
    }
    Ok(report)
}

/// How watching one token ended.
enum Watched {
    Refused,
    StillAccepted,
    RefusedOtherwise(VerifyError),
}

struct Watch {
    outcome: Watched,
    /// When the outcome was seen.
    at: Instant,
    feed_events: u64,
}

/// Verifies `token` now and after every feed event the verifier applies, until it is refused
/// or `deadline` passes.
async fn until_refused(
    verifier: &LocalVerifier,
    token: &str,
    deadline: tokio::time::Instant,
) -> Watch {
    let mut feed_events = 0;
    loop {
        // Taken before the check, so an event applied during the check still ends the wait.
        let next_event = verifier.next_feed_event();
        let outcome = match verifier.verify_token(token).await {
            Ok(_) => {
                if tokio::time::timeout_at(deadline, next_event).await.is_err() {
                    Watched::StillAccepted
                } else {
                    feed_events += 1;
                    continue;
                }
            }
            Err(VerifyError::Revoked) => Watched::Refused,
            Err(other) => Watched::RefusedOtherwise(other),
        };
        return Watch {
            outcome,
            at: Instant::now(),
            feed_events,
        };
    }
}

/// Registers and logs in `count` users, `concurrency` at a time; their access tokens, in order.
async fn log_in(
    auth: &AuthServiceClient<Channel>,
    count: usize,
    concurrency: u32,
) -> Result<Vec<String>, BenchError> {
    let run = unix_millis();
    let workers = usize::try_from(concurrency).unwrap_or(1).max(1);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let mut auth = auth.clone();
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                for index in (worker..count).step_by(workers) {
                    let email = format!("bench-{run}-{index}@example.com");
                    auth.register(RegisterRequest {
                        email: email.clone(),
                        password: PASSWORD.into(),
                    })
                    .await
                    .map_err(|status| BenchError::Rpc {
                        call: "Register",
                        status,
                    })?;
                    let login = auth
                        .login(LoginRequest {
                            email,
                            password: PASSWORD.into(),
                            kind: CredentialKind::Tokens.into(),
                            management: false,
                        })
                        .await
                        .map_err(|status| BenchError::Rpc {
                            call: "Login",
                            status,
                        })?
                        .into_inner();
                    let Some(Credential::Tokens(pair)) = login.credential else {
                        return Err(BenchError::Rpc {
                            call: "Login",
                            status: Status::internal("no token pair in the answer"),
                        });
                    };
                    tokens.push((index, pair.access_token));
                }
                Ok(tokens)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_by_key(|(index, _)| *index);
    Ok(all.into_iter().map(|(_, token)| token).collect())
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}
