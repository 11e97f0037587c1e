//! Prometheus metrics, served as text at `/metrics` on the HTTP listener (`AUTH_HTTP_ADDR`, off
//! unless set; `http/metrics.rs`). Request counters and latencies are recorded as calls complete
//! (`Metrics` is the per-RPC log layer's `RpcObserver`); the gauges (hashing queue, feed
//! subscribers, whether the database and Redis answer) are read from their sources at scrape time,
//! so they cannot drift. Live sessions are counted by the database at most once per
//! [`LIVE_SESSIONS_SAMPLE`], from an index of the unrevoked sessions only (the migration
//! `*_retention.sql`), never by scanning the table on every scrape.

use std::{sync::Arc, time::Duration};

use auth_api::telemetry::RpcObserver;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::{
    domain::{Timestamp, audit::AuditTrail, ports::Store},
    engine::{hashing::PasswordHasher, hub::RevocationHub, keys::KeyManager},
    readiness::Readiness,
};

/// How long a count of the live sessions is reported before the database is asked again.
pub const LIVE_SESSIONS_SAMPLE: Duration = Duration::from_secs(15);

pub struct Metrics {
    registry: Registry,
    rpc_requests: IntCounterVec,
    rpc_latency: HistogramVec,
    logins: IntCounterVec,
    revocations: IntCounter,
    admin_actions: IntCounterVec,
    live_sessions: IntGauge,
    hashing_queue: IntGauge,
    feed_subscribers: IntGauge,
    session_cache_entries: IntGauge,
    session_cache_hits: IntCounter,
    signatures_checked: IntCounter,
    signature_rounds: IntCounter,
    database_up: IntGauge,
    /// Registered only when Redis is configured.
    redis_up: Option<IntGauge>,
    sources: Sources,
    /// When live sessions were last counted.
    live_sessions_counted: tokio::sync::Mutex<Option<Timestamp>>,
}

/// Where the scrape-time gauges come from.
pub struct Sources {
    pub store: Arc<dyn Store>,
    pub hasher: Arc<PasswordHasher>,
    pub keys: Arc<KeyManager>,
    pub revocations: Arc<RevocationHub>,
    pub readiness: Readiness,
    /// The administrative calls (`domain/audit.rs`), counted by action and outcome.
    pub audit: Arc<AuditTrail>,
}

impl Metrics {
    pub fn new(sources: Sources) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("auth".into()), None)?;
        let rpc_requests = IntCounterVec::new(
            Opts::new("rpc_requests_total", "gRPC calls by method and status code"),
            &["method", "code"],
        )?;
        let rpc_latency = HistogramVec::new(
            HistogramOpts::new("rpc_duration_seconds", "gRPC call latency by method").buckets(
                vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5,
                ],
            ),
            &["method"],
        )?;
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "Login calls by outcome"),
            &["outcome"],
        )?;
        let revocations = IntCounter::new(
            "revocations_total",
            "Sessions and users revoked by this process",
        )?;
        let admin_actions = IntCounterVec::new(
            Opts::new(
                "admin_actions_total",
                "AdminService calls by action and outcome (ok or refused), as audited",
            ),
            &["action", "outcome"],
        )?;
        registry.register(Box::new(admin_actions.clone()))?;
        let live_sessions = IntGauge::new(
            "live_sessions",
            "Sessions neither revoked nor expired (all replicas; counted at most every 15 s)",
        )?;
        let hashing_queue = IntGauge::new(
            "password_hashing_queue",
            "Password hashes waiting for a hashing slot",
        )?;
        let feed_subscribers = IntGauge::new(
            "revocation_feed_subscribers",
            "Open WatchRevocations streams",
        )?;
        let session_cache_entries = IntGauge::new(
            "session_cache_entries",
            "Live sessions this replica remembers for Verify",
        )?;
        let session_cache_hits = IntCounter::new(
            "session_cache_hits_total",
            "Verify calls answered for a remembered session, without reading the database",
        )?;
        let signatures_checked = IntCounter::new(
            "signatures_checked_total",
            "Ed25519 signatures of first-seen access tokens checked",
        )?;
        let signature_rounds = IntCounter::new(
            "signature_check_rounds_total",
            "Rounds those signatures were checked in (one, or a batch of those arriving together)",
        )?;
        let database_up = IntGauge::new(
            "database_up",
            "1 while the database answers the health probe, else 0 (not ready)",
        )?;
        registry.register(Box::new(database_up.clone()))?;
        let redis_up = match sources.readiness.current().redis_up {
            Some(_) => {
                let gauge = IntGauge::new(
                    "redis_up",
                    "1 while Redis answers the health probe, else 0 (degraded, still serving)",
                )?;
                registry.register(Box::new(gauge.clone()))?;
                Some(gauge)
            }
            None => None,
        };
        registry.register(Box::new(signatures_checked.clone()))?;
        registry.register(Box::new(signature_rounds.clone()))?;
        registry.register(Box::new(session_cache_entries.clone()))?;
        registry.register(Box::new(session_cache_hits.clone()))?;
        registry.register(Box::new(rpc_requests.clone()))?;
        registry.register(Box::new(rpc_latency.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(revocations.clone()))?;
        registry.register(Box::new(live_sessions.clone()))?;
        registry.register(Box::new(hashing_queue.clone()))?;
        registry.register(Box::new(feed_subscribers.clone()))?;
        Ok(Self {
            registry,
            rpc_requests,
            rpc_latency,
            logins,
            revocations,
            admin_actions,
            live_sessions,
            hashing_queue,
            feed_subscribers,
            session_cache_entries,
            session_cache_hits,
            signatures_checked,
            signature_rounds,
            database_up,
            redis_up,
            sources,
            live_sessions_counted: tokio::sync::Mutex::new(None),
        })
    }

    /// The text exposition of every metric, with the gauges read now.
    pub async fn render(&self) -> String {
        self.sample_live_sessions().await;
        set_gauge(&self.hashing_queue, self.sources.hasher.queue_depth());
        let dependencies = self.sources.readiness.current();
        self.database_up.set(i64::from(dependencies.database_up));
        if let (Some(gauge), Some(up)) = (&self.redis_up, dependencies.redis_up) {
            gauge.set(i64::from(up));
        }
        set_gauge(
            &self.feed_subscribers,
            self.sources.revocations.feed_stream_count(),
        );
        let cache = self.sources.revocations.live_sessions();
        set_gauge(&self.session_cache_entries, cache.len());
        catch_up(&self.session_cache_hits, cache.hit_count());
        let checks = self.sources.keys.signature_counts();
        catch_up(&self.signatures_checked, checks.signatures);
        catch_up(&self.signature_rounds, checks.rounds);
        catch_up(
            &self.revocations,
            self.sources.revocations.announced_count(),
        );
        for (action, outcome, total) in self.sources.audit.counts() {
            catch_up(
                &self.admin_actions.with_label_values(&[action, outcome]),
                total,
            );
        }
        let mut text = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

impl Metrics {
    /// Counts the live sessions again if the last count is older than [`LIVE_SESSIONS_SAMPLE`]
    /// (one count at a time: concurrent scrapes wait for it, then report it).
    async fn sample_live_sessions(&self) {
        let mut counted = self.live_sessions_counted.lock().await;
        let now = Timestamp::now();
        if counted.is_some_and(|at| now.since(at) < LIVE_SESSIONS_SAMPLE) {
            return;
        }
        match self.sources.store.count_live_sessions(now).await {
            Ok(count) => {
                set_gauge(&self.live_sessions, count);
                *counted = Some(now);
            }
            Err(error) => tracing::warn!(%error, "counting live sessions for metrics failed"),
        }
    }
}

/// Every finished call, as the per-RPC log layer (`auth_api::telemetry::RpcLogLayer`) reports it.
impl RpcObserver for Metrics {
    fn rpc_finished(&self, method: &str, code: tonic::Code, latency: Duration) {
        self.rpc_requests
            .with_label_values(&[method, &format!("{code:?}")])
            .inc();
        self.rpc_latency
            .with_label_values(&[method])
            .observe(latency.as_secs_f64());
        if method.ends_with("/Login") {
            let outcome = match code {
                tonic::Code::Ok => "success",
                tonic::Code::Unauthenticated => "invalid_credentials",
                tonic::Code::ResourceExhausted => "shed",
                _ => "error",
            };
            self.logins.with_label_values(&[outcome]).inc();
        }
    }
}

fn set_gauge(gauge: &IntGauge, value: impl TryInto<i64>) {
    gauge.set(value.try_into().unwrap_or(i64::MAX));
}

/// Brings a counter up to a running total kept by its source (which counts without knowing of
/// Prometheus).
fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}
