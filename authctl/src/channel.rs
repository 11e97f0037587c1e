//! The connection to the server: its endpoint (authctl's user agent and timeouts), and the
//! words for a failure to connect.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::Failure;

/// The server's endpoint, with authctl's user agent and timeouts.
pub(crate) fn endpoint(server: &str) -> Result<Endpoint, Failure> {
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    Ok(Endpoint::from_shared(url.clone())
        .map_err(|error| Failure::Usage(format!("invalid server URL {url}: {error}")))?
        .user_agent(concat!("authctl/", env!("CARGO_PKG_VERSION")))
        .map_err(|error| Failure::Usage(format!("invalid user agent: {error}")))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30)))
}

pub(crate) async fn connect(endpoint: Endpoint) -> Result<Channel, Failure> {
    endpoint.connect().await.map_err(|error| {
        Failure::Connect(format!(
            "cannot connect to {}: {}",
            endpoint.uri(),
            source_chain(&error)
        ))
    })
}

/// An error with its causes (`transport error: tcp connect error: Connection refused`).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
