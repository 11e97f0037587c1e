//! The fault run: with the mixed workload running on two replicas, one fault after another:
//! Redis killed and restarted empty, PostgreSQL restarted, a replica `kill -9`ed right after it
//! acknowledged a revocation and right after it acknowledged a rotation, the `LocalVerifier` cut
//! off its revocation feed. After each, the run waits for service to resume by itself (a quiet
//! second with no error at all) and checks the credentials the fault touched; the workload's own
//! checks run throughout (see [`crate::workload`]).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    RunError,
    deployment::Deployment,
    pool::Entry,
    workload::{Target, Workload},
};

#[derive(Clone, Debug)]
pub struct FaultPlan {
    /// Load without faults before, between and after the faults.
    pub steady: Duration,
    /// How long Redis stays dead.
    pub redis_down: Duration,
    /// A shell command that restarts the PostgreSQL server the run uses; `None` skips the fault.
    pub postgres_restart: Option<String>,
    /// How many times replica B is killed after a revocation, and again after a rotation.
    pub kills: usize,
    /// How long the verifier stays cut off its feed.
    pub feed_cut: Duration,
    /// Service must resume within this long after a fault is cleared.
    pub recovery_limit: Duration,
}

/// The `pg_ctlcluster` command for the one local cluster, when there is exactly one.
pub fn detect_postgres_restart() -> Option<String> {
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let [version] = versions.as_slice() else {
        return None;
    };
    let available = Command::new("sh")
        .args(["-c", "command -v pg_ctlcluster"])
        .output()
        .is_ok_and(|output| output.status.success());
    // Immediate mode: no checkpoint, crash recovery on start, as after a power cut.
    available.then(|| {
        format!("pg_ctlcluster --skip-systemctl-redirect --mode immediate {version} main restart")
    })
}

pub async fn run(deployment: &mut Deployment, plan: &FaultPlan) -> Result<(), RunError> {
    let recorder = std::sync::Arc::clone(&deployment.recorder);
    recorder.begin_phase("steady load", false);
    tokio::time::sleep(plan.steady).await;
    deployment.note_rss();

    // Redis: SIGKILL; it comes back empty (no persistence).
    recorder.begin_phase("Redis killed", true);
    deployment.redis.kill();
    tokio::time::sleep(plan.redis_down).await;
    deployment.redis.restart().await?;
    recovered(deployment, "Redis restarted, empty", plan).await;
    steady(deployment, "after Redis", plan).await;

    // PostgreSQL: restarted under the replicas' feet.
    match &plan.postgres_restart {
        Some(command) => {
            recorder.begin_phase("PostgreSQL restarting", true);
            let started = Instant::now();
            let command = command.clone();
            let status = tokio::task::spawn_blocking(move || {
                Command::new("sh").args(["-c", &command]).status()
            })
            .await??;
            if !status.success() {
                return Err(format!("the PostgreSQL restart command failed ({status})").into());
            }
            recorder.note(format!(
                "restart command took {:.2} s",
                started.elapsed().as_secs_f64()
            ));
            recovered(deployment, "PostgreSQL back", plan).await;
            steady(deployment, "after PostgreSQL", plan).await;
        }
        None => {
            recorder
                .note("PostgreSQL restart SKIPPED: no restart command (pass --postgres-restart)");
        }
    }

    for round in 1..=plan.kills {
        kill_after_revocation(deployment, round, plan).await?;
        kill_after_rotation(deployment, round, plan).await?;
    }
    steady(deployment, "after the replica kills", plan).await;

    feed_cut(deployment, plan).await?;
    steady(deployment, "steady load, end", plan).await;
    deployment.note_rss();
    Ok(())
}

async fn steady(deployment: &Deployment, name: &str, plan: &FaultPlan) {
    deployment.recorder.begin_phase(name, false);
    tokio::time::sleep(plan.steady).await;
}

/// The fault is cleared: UNAVAILABLE is still tolerated until a full second passes without any
/// error, which must happen within the plan's limit.
async fn recovered(deployment: &Deployment, name: &str, plan: &FaultPlan) {
    let recorder = &deployment.recorder;
    recorder.begin_phase(format!("{name}: recovering"), true);
    match recorder
        .wait_until_quiet(Duration::from_secs(1), plan.recovery_limit)
        .await
    {
        Some(after) if after.is_zero() => {
            recorder.note("no error once the fault was cleared (a quiet second followed)")
        }
        Some(after) => recorder.note(format!(
            "last error {:.2} s after the fault was cleared; then a quiet second",
            after.as_secs_f64()
        )),
        None => recorder.violation(format!(
            "{name}: errors went on for more than {:?} after the fault was cleared",
            plan.recovery_limit
        )),
    }
}

/// A round of killing replica B: a fresh token pair from B (outside the pool), and the phase.
async fn kill_round(
    deployment: &Deployment,
    after: &str,
    round: usize,
) -> Result<
    (
        std::sync::Arc<Workload>,
        Target,
        Target,
        std::sync::Arc<Entry>,
    ),
    RunError,
> {
    let workload = std::sync::Arc::clone(&deployment.workload);
    let (a, b) = (workload.targets[0].clone(), workload.targets[1].clone());
    let entry = workload.fresh_token_pair(&b).await?;
    deployment.recorder.begin_phase(
        format!("replica-b kill -9 right after {after} ({round})"),
        true,
    );
    Ok((workload, a, b, entry))
}

/// B acknowledges a Logout and dies at once; A and the verifier must refuse the session.
async fn kill_after_revocation(
    deployment: &mut Deployment,
    round: usize,
    plan: &FaultPlan,
) -> Result<(), RunError> {
    let (workload, a, b, entry) = kill_round(deployment, "a revocation", round).await?;
    workload.logout_on(&b, &entry).await?;
    deployment.replicas[1].kill9();
    workload
        .check_refused_everywhere(&a, &entry, "revoked on killed B, checked on A")
        .await;
    deployment.replicas[1].start().await?;
    recovered(deployment, "replica-b restarted", plan).await;
    Ok(())
}

/// B acknowledges a rotation and dies at once; the new refresh token must work on A and the old
/// one must be refused there.
async fn kill_after_rotation(
    deployment: &mut Deployment,
    round: usize,
    plan: &FaultPlan,
) -> Result<(), RunError> {
    let (workload, a, b, entry) = kill_round(deployment, "a rotation", round).await?;
    let rotated_away = workload.rotate_on(&b, &entry).await?;
    deployment.replicas[1].kill9();
    // The acknowledged rotation survived: its new token is the session's current one.
    let previous = workload.rotate_on(&a, &entry).await?;
    // Two generations back now, beyond any grace: refused, and the session with it.
    workload.check_old_refresh_refused(&a, rotated_away).await;
    drop(previous);
    deployment.replicas[1].start().await?;
    recovered(deployment, "replica-b restarted", plan).await;
    Ok(())
}

/// The verifier loses its feed; a session revoked meanwhile must not be accepted beyond the
/// verifier's outage allowance, live ones fail closed after it, and all is well once it is back.
async fn feed_cut(deployment: &mut Deployment, plan: &FaultPlan) -> Result<(), RunError> {
    let workload = std::sync::Arc::clone(&deployment.workload);
    let b = workload.targets[1].clone();
    let recorder = std::sync::Arc::clone(&deployment.recorder);
    let revoked_during_cut = workload.fresh_token_pair(&b).await?;
    let live = workload.fresh_token_pair(&b).await?;
    recorder.begin_phase("LocalVerifier cut off its feed", true);
    deployment.feed_proxy.cut();
    workload.logout_on(&b, &revoked_during_cut).await?;
    workload
        .check_refused_everywhere(&b, &revoked_during_cut, "revoked during the cut")
        .await;
    tokio::time::sleep(plan.feed_cut).await;
    if let Some(verifier) = &workload.verifier {
        let live_access = live.credential().bearer().to_owned();
        match verifier.verify_token(&live_access).await {
            Err(auth_api::VerifyError::Unavailable) => recorder.note(format!(
                "after {:?} without its feed the verifier fails closed (UNAVAILABLE) even for a live token",
                plan.feed_cut
            )),
            other => recorder.violation(format!(
                "the verifier was cut off its feed for {:?} and still answered {:?}",
                plan.feed_cut,
                other.map(|principal| principal.session_id)
            )),
        }
    }
    deployment.feed_proxy.restore();
    let restored = Instant::now();
    if let Some(verifier) = &workload.verifier {
        while !verifier.feed_is_live() {
            if restored.elapsed() > plan.recovery_limit {
                recorder.violation("the verifier did not reconnect to its feed by itself");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        recorder.note(format!(
            "feed live again {:.0} ms after the proxy was restored",
            restored.elapsed().as_secs_f64() * 1000.0
        ));
    }
    recovered(deployment, "feed restored", plan).await;
    recorder.begin_phase("after the feed cut", false);
    workload
        .check_refused_everywhere(
            &b,
            &revoked_during_cut,
            "revoked during the cut, checked after",
        )
        .await;
    Ok(())
}

/// Revocation propagation across processes: for each of `count` sessions made on replica B, the
/// time from just before `Logout` is sent to B until the `LocalVerifier` in this process (fed by
/// replica A, another process) refuses the session's token. Milliseconds, sorted.
pub async fn propagation(deployment: &Deployment, count: usize) -> Result<Vec<f64>, RunError> {
    let workload = std::sync::Arc::clone(&deployment.workload);
    let b = workload.targets[1].clone();
    let verifier = workload.verifier.as_ref().ok_or("no verifier")?;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let entry = workload.fresh_token_pair(&b).await?;
        let access = entry.credential().bearer().to_owned();
        verifier.verify_token(&access).await?;
        let started = Instant::now();
        let logout = workload.logout_on(&b, &entry);
        let refused = async {
            loop {
                let next_event = verifier.next_feed_event();
                if verifier.verify_token(&access).await.is_err() {
                    return started.elapsed();
                }
                next_event.await;
            }
        };
        let (answered, refused_after) = tokio::join!(
            logout,
            tokio::time::timeout(Duration::from_secs(10), refused)
        );
        answered?;
        let refused_after =
            refused_after.map_err(|_| "a revoked token was still accepted after 10 s")?;
        samples.push(refused_after.as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}
