//! Whether this replica can serve, decided in one place for every listener: gRPC health, the
//! HTTP `/readyz`, and the metrics all read the same [`Readiness`].
//!
//! Ready means: the database answers, and shutdown has not begun. The signing keys are loaded
//! before anything listens (`Components::open`), so a listening replica always has them. Redis
//! is *not* a condition: without it `Verify`, `Login` and `Refresh` still work (revocations
//! reach other replicas through the database's change log, brute-force counts are kept per
//! replica; RELIABILITY.md), so a Redis outage is reported as degraded (a warning, the
//! `auth_redis_up` gauge), never as NOT_SERVING: taking every replica out of a load balancer
//! because Redis is away would turn a degraded service into an outage.
//!
//! The probe sees the database and Redis only as [`Dependency`]s: it knows that they answer, not
//! what they are (`app.rs` implements the trait for the store and for Redis).

use std::time::Duration;

use async_trait::async_trait;
use tokio::{sync::watch, task::JoinHandle};

use crate::domain::ports::StoreError;

/// Something the service talks to (the database, Redis), as the probe sees it.
#[async_trait]
pub trait Dependency: Send + Sync {
    /// Whether it answers a trivial request now; an error counts as down, and so does a reply
    /// slower than [`PROBE_TIMEOUT`].
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A probe slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the last probe found, and whether shutdown has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub database_up: bool,
    /// `None` when no Redis is configured.
    pub redis_up: Option<bool>,
    pub stopping: bool,
}

impl State {
    /// Whether this replica should receive calls.
    pub fn ready(&self) -> bool {
        self.database_up && !self.stopping
    }
}

/// The shared, current [`State`]; cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    state: watch::Sender<State>,
}

impl Readiness {
    /// Ready, with Redis up when it is configured: the start-up has just reached both.
    pub fn new(redis_configured: bool) -> Self {
        let (state, _) = watch::channel(State {
            database_up: true,
            redis_up: redis_configured.then_some(true),
            stopping: false,
        });
        Self { state }
    }

    pub fn current(&self) -> State {
        *self.state.borrow()
    }

    /// Every change from now on (the current state first).
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.state.subscribe()
    }

    /// Not ready from now on, whatever the probe finds.
    pub fn stop(&self) {
        self.state.send_modify(|state| state.stopping = true);
    }

    /// Probes the dependencies every `interval`, records what it finds, and logs each change.
    pub fn spawn_probe(
        &self,
        database: impl Dependency + 'static,
        redis: Option<impl Dependency + 'static>,
        interval: Duration,
    ) -> JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let database_up = answers(&database).await;
                let redis_up = match &redis {
                    Some(redis) => Some(answers(redis).await),
                    None => None,
                };
                let before = *state.borrow();
                log_changes(before, database_up, redis_up);
                state.send_if_modified(|state| {
                    let changed = state.database_up != database_up || state.redis_up != redis_up;
                    state.database_up = database_up;
                    state.redis_up = redis_up;
                    changed
                });
            }
        })
    }
}

async fn answers(dependency: &impl Dependency) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, dependency.ping()).await,
        Ok(Ok(()))
    )
}

fn log_changes(before: State, database_up: bool, redis_up: Option<bool>) {
    if before.database_up != database_up {
        if database_up {
            tracing::info!("the database is reachable again: ready, health SERVING");
        } else {
            tracing::warn!("the database is unreachable: not ready, health NOT_SERVING");
        }
    }
    if before.redis_up != redis_up {
        match redis_up {
            Some(false) => tracing::warn!(
                "Redis is unreachable: still serving, degraded (revocations reach other replicas \
                 through the database within the poll interval; brute-force counts are per \
                 replica)"
            ),
            Some(true) => tracing::info!("Redis is reachable again"),
            None => {}
        }
    }
}
