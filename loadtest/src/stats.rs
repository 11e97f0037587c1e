//! What a run saw: per phase and operation a latency histogram and the count of every outcome
//! (status code and reason), the violations of the run's invariants, and the Markdown report.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// How an outcome counts against the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Ok,
    /// A refusal the workload asked for (a revoked credential refused, say).
    Expected,
    /// Load shed by design (RESOURCE_EXHAUSTED with a retry delay).
    Shed,
    /// UNAVAILABLE (or a client deadline) while a fault is in force or clearing.
    Tolerated,
    /// Anything else: the run fails.
    Unexpected,
}

impl Class {
    fn marker(self) -> &'static str {
        match self {
            Class::Ok | Class::Expected => "",
            Class::Shed => " (shed)",
            Class::Tolerated => " (outage)",
            Class::Unexpected => " (**unexpected**)",
        }
    }
}

const MAX_VIOLATIONS_KEPT: usize = 50;

pub struct Recorder {
    started: Instant,
    outage: AtomicBool,
    data: Mutex<Data>,
}

struct Data {
    phases: Vec<Phase>,
    violations: Vec<String>,
    violation_count: u64,
    unexpected_count: u64,
    last_disruption: Option<Instant>,
    /// How long after a revocation was acknowledged a LocalVerifier still accepted the token.
    local_acceptance_after_ack: Histogram<u64>,
}

struct Phase {
    name: String,
    outage: bool,
    started: Duration,
    ended: Option<Duration>,
    ops: BTreeMap<&'static str, OpStats>,
    notes: Vec<String>,
}

struct OpStats {
    latency_us: Histogram<u64>,
    outcomes: BTreeMap<(Class, String), u64>,
}

#[allow(clippy::expect_used)] // constant bounds that hdrhistogram accepts
fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            outage: AtomicBool::new(false),
            data: Mutex::new(Data {
                phases: vec![Phase::new("setup", false, Duration::ZERO)],
                violations: Vec::new(),
                violation_count: 0,
                unexpected_count: 0,
                last_disruption: None,
                local_acceptance_after_ack: histogram(),
            }),
        }
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a new phase; `outage` says whether UNAVAILABLE is tolerated in it.
    pub fn begin_phase(&self, name: impl Into<String>, outage: bool) {
        let now = self.started.elapsed();
        let mut data = self.data();
        if let Some(current) = data.phases.last_mut() {
            current.ended = Some(now);
        }
        data.phases.push(Phase::new(name, outage, now));
        self.outage.store(outage, Ordering::SeqCst);
    }

    pub fn in_outage(&self) -> bool {
        self.outage.load(Ordering::SeqCst)
    }

    pub fn record(&self, op: &'static str, outcome: &str, class: Class, latency: Duration) {
        let mut data = self.data();
        if matches!(class, Class::Tolerated | Class::Unexpected) {
            data.last_disruption = Some(Instant::now());
        }
        if class == Class::Unexpected {
            data.unexpected_count += 1;
        }
        let Some(phase) = data.phases.last_mut() else {
            return;
        };
        let stats = phase.ops.entry(op).or_insert_with(|| OpStats {
            latency_us: histogram(),
            outcomes: BTreeMap::new(),
        });
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        stats.latency_us.saturating_record(micros);
        *stats
            .outcomes
            .entry((class, outcome.to_owned()))
            .or_default() += 1;
    }

    /// An invariant broken: the run fails.
    pub fn violation(&self, what: impl Into<String>) {
        let what = format!(
            "{:.3}s: {}",
            self.started.elapsed().as_secs_f64(),
            what.into()
        );
        eprintln!("VIOLATION {what}");
        let mut data = self.data();
        data.violation_count += 1;
        if data.violations.len() < MAX_VIOLATIONS_KEPT {
            data.violations.push(what);
        }
    }

    pub fn local_acceptance_after_ack(&self, after: Duration) {
        let micros = u64::try_from(after.as_micros()).unwrap_or(u64::MAX).max(1);
        self.data()
            .local_acceptance_after_ack
            .saturating_record(micros);
    }

    /// A line under the current phase's table.
    pub fn note(&self, line: impl Into<String>) {
        let line = line.into();
        println!("  {line}");
        if let Some(phase) = self.data().phases.last_mut() {
            phase.notes.push(line);
        }
    }

    /// When the last tolerated or unexpected error was recorded.
    pub fn last_disruption(&self) -> Option<Instant> {
        self.data().last_disruption
    }

    pub fn violations(&self) -> u64 {
        self.data().violation_count
    }

    pub fn unexpected(&self) -> u64 {
        self.data().unexpected_count
    }

    /// Waits until `quiet` has passed with no tolerated or unexpected error; `None` if that did
    /// not happen within `limit`. Returns how long it took.
    pub async fn wait_until_quiet(&self, quiet: Duration, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        loop {
            let quiet_since = self.last_disruption().map_or(start, |at| at.max(start));
            if quiet_since.elapsed() >= quiet {
                return Some(quiet_since.duration_since(start));
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The whole run as Markdown.
    pub fn report(&self) -> String {
        let now = self.started.elapsed();
        let data = self.data();
        let mut out = String::new();
        for phase in &data.phases {
            if phase.ops.is_empty() && phase.notes.is_empty() {
                continue;
            }
            let length = phase.ended.unwrap_or(now).saturating_sub(phase.started);
            let _ = writeln!(
                out,
                "\n### {} ({:.1} s from {:.1} s{})\n",
                phase.name,
                length.as_secs_f64(),
                phase.started.as_secs_f64(),
                if phase.outage { ", fault in force" } else { "" }
            );
            if !phase.ops.is_empty() {
                out.push_str(
                    "| operation | calls | calls/s | p50 ms | p99 ms | p99.9 ms | max ms | outcomes |\n",
                );
                out.push_str("|---|---:|---:|---:|---:|---:|---:|---|\n");
            }
            for (op, stats) in &phase.ops {
                let calls = stats.latency_us.len();
                let rate = calls as f64 / length.as_secs_f64().max(0.001);
                let outcomes = stats
                    .outcomes
                    .iter()
                    .map(|((class, label), count)| format!("{label} {count}{}", class.marker()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let ms =
                    |quantile: f64| stats.latency_us.value_at_quantile(quantile) as f64 / 1000.0;
                let _ = writeln!(
                    out,
                    "| {op} | {calls} | {rate:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {outcomes} |",
                    ms(0.5),
                    ms(0.99),
                    ms(0.999),
                    stats.latency_us.max() as f64 / 1000.0
                );
            }
            if !phase.notes.is_empty() {
                out.push('\n');
                for note in &phase.notes {
                    let _ = writeln!(out, "- {note}");
                }
            }
        }
        let lags = &data.local_acceptance_after_ack;
        let _ = writeln!(out, "\n### Summary\n");
        if lags.is_empty() {
            let _ = writeln!(
                out,
                "- No LocalVerifier accepted a token after its revocation was acknowledged."
            );
        } else {
            let _ = writeln!(
                out,
                "- A LocalVerifier accepted a revoked token after the acknowledgement {} times \
                 (the feed's propagation; bounded by the run's limit): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms.",
                lags.len(),
                lags.value_at_quantile(0.5) as f64 / 1000.0,
                lags.value_at_quantile(0.99) as f64 / 1000.0,
                lags.max() as f64 / 1000.0
            );
        }
        let _ = writeln!(out, "- Unexpected outcomes: {}.", data.unexpected_count);
        let _ = writeln!(out, "- Violations: {}.", data.violation_count);
        for violation in &data.violations {
            let _ = writeln!(out, "  - {violation}");
        }
        out
    }
}

impl Phase {
    fn new(name: impl Into<String>, outage: bool, started: Duration) -> Self {
        Self {
            name: name.into(),
            outage,
            started,
            ended: None,
            ops: BTreeMap::new(),
            notes: Vec::new(),
        }
    }
}

/// `CODE REASON` (the `google.rpc.ErrorInfo` reason the auth service attaches), or
/// `CODE (message)` for a status the client made itself.
pub fn status_label(status: &Status) -> String {
    match status.get_details_error_info() {
        Some(info) => format!("{} {}", code_name(status.code()), info.reason),
        // Not the auth service's answer: the client's own (a broken connection, a deadline).
        None => format!("{} ({})", code_name(status.code()), status.message()),
    }
}

pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
