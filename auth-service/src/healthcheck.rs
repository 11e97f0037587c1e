//! `auth-service healthcheck`: a gRPC health client in the server's own binary, so container
//! and Kubernetes probes ask the server whether it serves instead of only whether its port
//! accepts a connection (which it does while its database is away, and while it shuts down).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::ExitCode,
};

use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::config::{HealthcheckArgs, Settings};

/// Exit status 0 when the server is ready (`--live`: when it answers at all), 1 otherwise; one
/// line on standard output or error says what was found.
pub async fn run(settings: &Settings, args: &HealthcheckArgs) -> ExitCode {
    match check(settings, args).await {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("auth-service healthcheck: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn check(settings: &Settings, args: &HealthcheckArgs) -> Result<String, String> {
    if settings.tls_cert.is_some() {
        // The probe runs beside the server, which it cannot name as its certificate does.
        return Err(
            "the gRPC listener speaks TLS (AUTH_TLS_CERT) and this check plaintext: \
                    probe GET /readyz and /healthz on AUTH_HTTP_ADDR instead"
                .into(),
        );
    }
    let addr = match &args.addr {
        Some(addr) => addr.clone(),
        None => reachable(settings.listen_addr).to_string(),
    };
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|error| format!("{addr}: {error}"))?
        .connect_timeout(args.timeout)
        .timeout(args.timeout);
    let asked = async {
        let channel = endpoint.connect().await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(response.into_inner().status())
    };
    let status = tokio::time::timeout(args.timeout, asked)
        .await
        .map_err(|_| format!("{addr}: no answer within {:?}", args.timeout))?
        .map_err(|error| format!("{addr}: {error}"))?;
    match status {
        ServingStatus::Serving => Ok(format!("{addr}: SERVING")),
        other if args.live => Ok(format!("{addr}: alive ({})", other.as_str_name())),
        other => Err(format!("{addr}: {}", other.as_str_name())),
    }
}

/// The listen address as a client on the same machine reaches it.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}
