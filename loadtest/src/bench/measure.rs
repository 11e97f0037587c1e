//! The measuring half of `loadgen bench`: the closed loop (callers that wait for each answer;
//! the open loop, arrivals at a fixed rate, is in `open_loop.rs`), the per-caller [`Tally`] they
//! merge, the [`BenchRow`] they return (printed as Markdown and JSON), and the service's CPU time per call read from
//! `/proc`. Kept apart from the scenarios so that what is measured and how it is timed can be read
//! on their own: a loop knows nothing of tokens or RPCs, only of calls that answer `Ok` or a status.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tonic::Status;

use super::BenchConfig;
use crate::stats::status_label;

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
pub(super) struct Tally {
    latency_us: Histogram<u64>,
    outcomes: BTreeMap<String, u64>,
}

impl Tally {
    #[allow(clippy::expect_used)] // constant bounds that hdrhistogram accepts
    pub(super) fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            outcomes: BTreeMap::new(),
        }
    }

    pub(super) fn record(&mut self, latency: Duration, outcome: Result<(), Status>) {
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

    /// The row of a scenario measured over `seconds`.
    pub(super) fn row(
        self,
        scenario: &str,
        (connections, concurrency): (usize, usize),
        seconds: f64,
        service_cpu_us: Option<f64>,
    ) -> BenchRow {
        let ms = |micros: u64| micros as f64 / 1000.0;
        BenchRow {
            scenario: scenario.to_owned(),
            connections,
            concurrency,
            requests: self.latency_us.len(),
            seconds,
            p50_ms: ms(self.latency_us.value_at_quantile(0.5)),
            p99_ms: ms(self.latency_us.value_at_quantile(0.99)),
            p999_ms: ms(self.latency_us.value_at_quantile(0.999)),
            max_ms: ms(self.latency_us.max()),
            outcomes: self.outcomes,
            service_cpu_us,
        }
    }

    pub(super) fn merge(&mut self, other: Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        for (label, count) in other.outcomes {
            *self.outcomes.entry(label).or_default() += count;
        }
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
    total.row(
        scenario,
        (config.connections, config.concurrency),
        seconds.as_secs_f64(),
        service_cpu_us,
    )
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

pub fn markdown_table(rows: &[BenchRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", BenchRow::markdown_header());
    for row in rows {
        let _ = writeln!(out, "{}", row.markdown());
    }
    out
}
