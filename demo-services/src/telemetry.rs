//! Logging set-up: `RUST_LOG` filters (the default is given per binary); output goes to standard
//! error, so the `demo` and `revocation-bench` reports on standard output stay readable.

use tracing_subscriber::{EnvFilter, fmt};

pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Another subscriber may already be set (tests); keeping it is fine.
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
