//! The soak: the mixed workload for a long time, one phase per interval, with the replicas' RSS
//! noted after each, so flat (or growing) latency and memory read straight off the report.

use std::time::{Duration, Instant};

use crate::deployment::Deployment;

pub async fn run(deployment: &Deployment, duration: Duration, interval: Duration) {
    let started = Instant::now();
    let mut index = 1;
    deployment.note_rss();
    while started.elapsed() < duration {
        deployment
            .recorder
            .begin_phase(format!("interval {index} of {:?}", interval), false);
        tokio::time::sleep(interval.min(duration.saturating_sub(started.elapsed()))).await;
        deployment.note_rss();
        index += 1;
    }
}
