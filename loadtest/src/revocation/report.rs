//! The numbers of a run, and their Markdown rendering (what BENCHMARKS.md quotes).

use std::time::Duration;

/// The deployment measured.
#[derive(Clone, Debug)]
pub enum Mode {
    Sqlite,
    /// Two replicas on one PostgreSQL schema and one Redis.
    PostgresRedis {
        schema: String,
    },
}

/// Percentiles of a set of durations (nearest rank), in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Option<Self> {
        let mut millis: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        millis.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = (p * millis.len() as f64).ceil() as usize;
            millis.get(index.saturating_sub(1)).copied()
        };
        Some(Self {
            count: millis.len(),
            p50: rank(0.50)?,
            p90: rank(0.90)?,
            p99: rank(0.99)?,
            max: *millis.last()?,
        })
    }
}

#[derive(Debug)]
pub struct BenchReport {
    pub mode: Mode,
    pub users: usize,
    pub login_time: Duration,
    /// Logout sent -> the verifier refuses the token, per user.
    pub revocation: Vec<Duration>,
    /// Logout sent -> Logout answered, per user.
    pub logout_call: Vec<Duration>,
    /// Users whose token the verifier refused before the Logout answer arrived.
    pub refused_before_logout_answered: usize,
    /// Feed events the verifier applied while waiting, over all users.
    pub feed_events_waited: u64,
    /// Users still accepted when the timeout ran out.
    pub timeouts: usize,
    /// Users refused for a reason other than SESSION_REVOKED.
    pub other_refusals: Vec<String>,
}

impl BenchReport {
    pub fn passed(&self) -> bool {
        self.timeouts == 0 && self.other_refusals.is_empty()
    }
}

/// The report as the Markdown that BENCHMARKS.md quotes.
pub fn render(report: &BenchReport) -> String {
    let mode = match &report.mode {
        Mode::Sqlite => {
            "SQLite, one replica (its feed and the Logout calls on the same process)".to_owned()
        }
        Mode::PostgresRedis { schema } => format!(
            "PostgreSQL + Redis, two replicas: the verifier's feed from A, Logout on B (schema {schema})"
        ),
    };
    let mut out = format!(
        "mode: {mode}\nusers: {} (registered and logged in in {:.1} s)\n\n",
        report.users,
        report.login_time.as_secs_f64()
    );
    out.push_str("| interval | count | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n");
    for (name, samples) in [
        (
            "Logout sent -> LocalVerifier refuses the token",
            &report.revocation,
        ),
        ("Logout sent -> Logout answered", &report.logout_call),
    ] {
        match Summary::of(samples) {
            Some(s) => out.push_str(&format!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                s.count, s.p50, s.p90, s.p99, s.max
            )),
            None => out.push_str(&format!("| {name} | 0 | | | | |\n")),
        }
    }
    out.push_str(&format!(
        "\nrefused before the Logout answer arrived: {} of {}\n\
         feed events awaited (over all users): {}\n\
         still accepted at the timeout: {}\nrefused for another reason: {}\n",
        report.refused_before_logout_answered,
        report.revocation.len(),
        report.feed_events_waited,
        report.timeouts,
        report.other_refusals.len(),
    ));
    for refusal in report.other_refusals.iter().take(5) {
        out.push_str(&format!("  {refusal}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.count, 100);
        assert_eq!(
            (summary.p50, summary.p90, summary.p99, summary.max),
            (50.0, 90.0, 99.0, 100.0)
        );
        let one = Summary::of(&[Duration::from_micros(1500)]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (1.5, 1.5, 1.5));
        assert_eq!(Summary::of(&[]), None);
    }
}
