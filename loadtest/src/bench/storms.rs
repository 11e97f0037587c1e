//! Scenarios where one kind of load runs beside another, to see what the second does to the
//! first's latency: `Verify` at a fixed rate alone, then the same rate during a refresh storm
//! generated on a runtime of its own.

use std::sync::Arc;

use super::{
    BenchConfig, BenchRow, Clients, Credentials, calls::refresh_call, closed_loop, open_loop,
    verify_call,
};
use crate::RunError;

/// `Verify` arrivals per second in `refresh-storm`: a steady stream, far below capacity, whose
/// tail shows what the refreshes cost the read path (the target: p99 within 1.5x of alone).
pub const STORM_VERIFIES_PER_SECOND: u32 = 2_000;

/// Verify at [`STORM_VERIFIES_PER_SECOND`] alone, then again while `config.concurrency` callers
/// refresh as fast as they can on connections of their own. Pushes the first two rows (verify
/// alone, the refreshes) and returns the third (verify during the refreshes).
pub(super) async fn refresh_storm(
    clients: &Clients,
    config: &BenchConfig,
    credentials: &Credentials,
    rows: &mut Vec<BenchRow>,
) -> Result<BenchRow, RunError> {
    let rate = STORM_VERIFIES_PER_SECOND;
    let tokens = Arc::new(credentials.access_tokens.clone());
    let alone = open_loop(
        &format!("refresh-storm: verify alone ({rate}/s)"),
        config,
        rate,
        verify_call(clients, Arc::clone(&tokens)),
    )
    .await;
    println!("{}", alone.markdown());
    rows.push(alone);

    // The refreshers get a runtime and threads of their own, as the other processes they stand
    // for would have. On the timing runtime their tasks would queue ahead of the `Verify` calls
    // being timed, which measures the load generator rather than the service. They still share
    // the cores with it and the service, at the same priority.
    let storm_threads = StormRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("loadgen-storm")
            .enable_all()
            .build()?,
    ));
    let storm_runtime = storm_threads.handle();
    let storm_clients = {
        let _inside = storm_runtime.enter();
        Clients::connect(&config.target, config.connections)?
    };
    let refreshes = refresh_call(&storm_clients, credentials, config.concurrency);
    let storm_config = config.clone();
    let storm = storm_runtime.spawn(async move {
        closed_loop("refresh-storm: refresh", &storm_config, refreshes).await
    });
    let during = open_loop(
        &format!("refresh-storm: verify during the refreshes ({rate}/s)"),
        config,
        rate,
        verify_call(clients, tokens),
    )
    .await;
    let refreshed = storm.await?;
    println!("{}", refreshed.markdown());
    rows.push(refreshed);
    Ok(during)
}

/// Stops its runtime without waiting for its threads when dropped (on any return), as a
/// runtime dropped inside another one must.
struct StormRuntime(Option<tokio::runtime::Runtime>);

impl StormRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("only taken when dropped"),
        }
    }
}

impl Drop for StormRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
