//! Open loops: calls sent at a fixed rate whatever the answers (many independent clients), each
//! timed from the moment it was *due*, not from when it was sent, so a service (or a generator)
//! that falls behind shows as latency rather than as fewer calls: no coordinated omission.

use std::{collections::BTreeMap, future::Future, time::Duration};

use tokio::time::{Instant, MissedTickBehavior};
use tonic::Status;

use super::{BenchConfig, BenchRow, measure::Tally};

/// Sends `call(i, i)` at `rate` per second for `warmup` + `duration`; one row for every call
/// sent after the warm-up.
pub async fn open_loop<F, Fut>(scenario: &str, config: &BenchConfig, rate: u32, call: F) -> BenchRow
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    let mut rows = open_loop_by_operation(scenario, config, rate, move |index| {
        ("", call(index as usize, index))
    })
    .await;
    rows.pop()
        .unwrap_or_else(|| Tally::new().row(scenario, (1, 0), config.duration.as_secs_f64(), None))
}

/// Like [`open_loop`] for a mix: `call(i)` names the operation it sent, and each operation gets
/// its own row (`"{scenario}: {operation}"`), its rate the share of `rate` it drew.
pub async fn open_loop_by_operation<F, Fut>(
    scenario: &str,
    config: &BenchConfig,
    rate: u32,
    call: F,
) -> Vec<BenchRow>
where
    F: Fn(u64) -> (&'static str, Fut),
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    let started = Instant::now();
    let measure_from = started + config.warmup;
    let end = measure_from + config.duration;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    // Behind schedule, send what was due at once (each still timed from when it was due).
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let mut index = 0u64;
    loop {
        let due = ticks.tick().await;
        if due >= end {
            break;
        }
        let (operation, answer) = call(index);
        index += 1;
        calls.spawn(async move {
            let outcome = answer.await;
            (due >= measure_from).then(|| (operation, due.elapsed(), outcome))
        });
    }
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    while let Some(result) = calls.join_next().await {
        if let Ok(Some((operation, latency, outcome))) = result {
            tallies
                .entry(operation)
                .or_insert_with(Tally::new)
                .record(latency, outcome);
        }
    }
    tallies
        .into_iter()
        .map(|(operation, tally)| {
            let name = if operation.is_empty() {
                scenario.to_owned()
            } else {
                format!("{scenario}: {operation}")
            };
            // Not a per-call figure here: the service's CPU is shared by the operations.
            tally.row(&name, (1, 0), config.duration.as_secs_f64(), None)
        })
        .collect()
}
