//! The binaries' settings: every setting is a flag and an environment variable (the flag wins).
//! Addresses of other services are URLs (`http://host:port`), parsed at start so a typo fails
//! there rather than at the first call.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use tonic::transport::Uri;

/// `order-service`: the user-facing orders API.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "order-service",
    version,
    about = "Orders, authenticated by the auth service, paid through payment-service"
)]
pub struct OrderSettings {
    /// Address the gRPC server listens on.
    #[arg(long, env = "ORDER_LISTEN_ADDR", default_value = "127.0.0.1:50061")]
    pub listen_addr: SocketAddr,

    /// The auth service (Verify for every call, ExchangeToken for payments).
    #[arg(long, env = "ORDER_AUTH_URL", default_value = "http://127.0.0.1:50051")]
    pub auth_url: Uri,

    /// The payment service.
    #[arg(
        long,
        env = "ORDER_PAYMENT_URL",
        default_value = "http://127.0.0.1:50062"
    )]
    pub payment_url: Uri,

    /// The audience of the tokens exchanged for calls to the payment service.
    #[arg(long, env = "ORDER_PAYMENT_AUDIENCE", default_value = crate::PAYMENT_AUDIENCE)]
    pub payment_audience: String,
}

/// `payment-service`: the internal payments API.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "payment-service",
    version,
    about = "Payments, for access tokens of the \"payments\" audience, verified locally"
)]
pub struct PaymentSettings {
    /// Address the gRPC server listens on.
    #[arg(long, env = "PAYMENT_LISTEN_ADDR", default_value = "127.0.0.1:50062")]
    pub listen_addr: SocketAddr,

    /// The auth service (keys and the revocation feed; never called per request).
    #[arg(
        long,
        env = "PAYMENT_AUTH_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub auth_url: Uri,

    /// The audience (`aud`) an access token must carry.
    #[arg(long, env = "PAYMENT_AUDIENCE", default_value = crate::PAYMENT_AUDIENCE)]
    pub audience: String,

    /// The issuer (`iss`) an access token must carry: the auth service's AUTH_ISSUER.
    #[arg(long, env = "PAYMENT_ISSUER", default_value = "auth")]
    pub issuer: String,

    /// How long the revocation feed may be down before every call is refused (fail closed).
    #[arg(long, env = "PAYMENT_MAX_FEED_OUTAGE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_feed_outage: Duration,
}

/// `demo`: the walkthrough.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "demo",
    version,
    about = "Register, order, pay, log out: shows each step and how fast a logout reaches payment-service"
)]
pub struct DemoSettings {
    /// Use services that are already running (at the URLs below) instead of starting all three
    /// in this process on free ports.
    #[arg(long, env = "DEMO_USE_RUNNING")]
    pub use_running: bool,

    /// With --use-running: the auth service.
    #[arg(long, env = "DEMO_AUTH_URL", default_value = "http://127.0.0.1:50051")]
    pub auth_url: Uri,

    /// With --use-running: order-service.
    #[arg(long, env = "DEMO_ORDER_URL", default_value = "http://127.0.0.1:50061")]
    pub order_url: Uri,

    /// With --use-running: payment-service.
    #[arg(
        long,
        env = "DEMO_PAYMENT_URL",
        default_value = "http://127.0.0.1:50062"
    )]
    pub payment_url: Uri,

    /// Log in for an opaque session token or for a token pair (JWT access token).
    #[arg(long, env = "DEMO_CREDENTIAL", value_enum, default_value_t = CredentialChoice::Session)]
    pub credential: CredentialChoice,
}

/// Which credential the walkthrough logs in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CredentialChoice {
    /// An opaque session token (only RemoteVerifier can check it).
    Session,
    /// A token pair; the access token is a JWT for the auth service's own audience.
    Tokens,
}

/// `revocation-bench`: how long a logout takes to reach a LocalVerifier.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "revocation-bench",
    version,
    about = "Logs in N users, logs each out and measures when a LocalVerifier rejects its token"
)]
pub struct BenchSettings {
    /// How many users (one session each) to log in and out.
    #[arg(long, env = "BENCH_COUNT", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,

    /// PostgreSQL base URL: run two replicas (A feeds the verifier, B revokes) sharing it. Needs
    /// --redis too. A fresh schema is created for the run and dropped after it.
    #[arg(long = "postgres", env = "TEST_DATABASE_URL", requires = "redis_url")]
    pub postgres_url: Option<String>,

    /// Redis URL for the replicas' revocation fan-out. Needs --postgres too.
    #[arg(long = "redis", env = "TEST_REDIS_URL", requires = "postgres_url")]
    pub redis_url: Option<String>,

    /// Give up on one revocation after this long.
    #[arg(long, env = "BENCH_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Logins made at once while preparing (each costs one argon2 hash, twice with Register).
    #[arg(long, env = "BENCH_LOGIN_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub login_concurrency: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ports() {
        let order = OrderSettings::parse_from(["order-service"]);
        assert_eq!(order.listen_addr.to_string(), "127.0.0.1:50061");
        assert_eq!(order.auth_url.to_string(), "http://127.0.0.1:50051/");
        assert_eq!(order.payment_url.to_string(), "http://127.0.0.1:50062/");
        let payment = PaymentSettings::parse_from(["payment-service"]);
        assert_eq!(payment.listen_addr.to_string(), "127.0.0.1:50062");
        assert_eq!(payment.audience, "payments");
    }
}
