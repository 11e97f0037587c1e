//! Scenarios where one kind of load runs beside another, to see what the second does to the
//! first's latency: `Verify` at a fixed rate alone, then the same rate during a refresh storm.

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

    let storm_clients = Clients::connect(&config.target, config.connections)?;
    let refreshes = refresh_call(&storm_clients, credentials, config.concurrency);
    let storm_config = config.clone();
    let storm = tokio::spawn(async move {
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
