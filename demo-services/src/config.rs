//! The binaries' settings: every setting is a flag and an environment variable (the flag wins).
//! Addresses of other services are URLs (`http://host:port`), parsed at start so a typo fails
//! there rather than at the first call.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use auth_api::tls::{ClientTls, ServerTls, TlsError};
use clap::Parser;
use tonic::transport::Uri;

/// The TLS settings every demo service has, read from their PEM files.
#[derive(Clone, Debug, Default)]
pub struct ServiceTls {
    /// For the listener; `None` is plaintext.
    pub server: Option<ServerTls>,
    /// For calls to other services; `None` is plaintext (http:// URLs only).
    pub client: Option<ClientTls>,
}

macro_rules! service_tls {
    ($settings:ty) => {
        impl $settings {
            /// Reads the TLS files now, so a wrong path fails the start.
            pub fn tls(&self) -> Result<ServiceTls, TlsError> {
                Ok(ServiceTls {
                    server: ServerTls::from_files(
                        self.tls_cert.as_deref(),
                        self.tls_key.as_deref(),
                        self.tls_client_ca.as_deref(),
                    )?,
                    client: ClientTls::from_files(
                        self.upstream_ca.as_deref(),
                        self.client_cert.as_deref(),
                        self.client_key.as_deref(),
                    )?,
                })
            }
        }
    };
}
service_tls!(OrderSettings);
service_tls!(PaymentSettings);

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

    /// This service's client id at the auth service (a service client, `authctl service
    /// create`): it exchanges its callers' tokens as itself.
    #[arg(long, env = "ORDER_CLIENT_ID", default_value = "order-service")]
    pub client_id: String,

    /// The client's secret (set the variable rather than the flag: a flag shows in the process
    /// list). Unset: exchanges are made without a service credential (deprecated; the auth
    /// service allows them only for AUTH_EXCHANGE_AUDIENCES, and their tokens name no actor).
    #[arg(long, env = "ORDER_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<ClientSecret>,

    /// The audience of this service's own service token (one of its client's audiences).
    #[arg(long, env = "ORDER_SERVICE_AUDIENCE", default_value = crate::ORDER_AUDIENCE)]
    pub service_audience: String,

    /// TLS: this server's certificate chain (PEM). Set with --tls-key; unset, plaintext.
    #[arg(long, env = "ORDER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// TLS: the private key of --tls-cert (PEM). Never printed.
    #[arg(long, env = "ORDER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: callers must present a certificate signed by this CA (PEM).
    #[arg(long, env = "ORDER_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// The CA (PEM) that signed the certificates of auth-service and payment-service: needed for https:// URLs.
    #[arg(long, env = "ORDER_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// Mutual TLS: the certificate (PEM) this service presents to auth-service and payment-service.
    #[arg(long, env = "ORDER_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,

    /// Mutual TLS: the private key of --client-cert (PEM). Never printed.
    #[arg(long, env = "ORDER_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
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

    /// The service that must have exchanged a token for it to be accepted (its `act`): only
    /// order-service charges on a user's behalf. Empty: any holder of a "payments" token.
    #[arg(long, env = "PAYMENT_REQUIRED_ACTOR", default_value = crate::ORDER_CLIENT_ID)]
    pub required_actor: String,

    /// How long the revocation feed may be down before every call is refused (fail closed).
    #[arg(long, env = "PAYMENT_MAX_FEED_OUTAGE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_feed_outage: Duration,

    /// TLS: this server's certificate chain (PEM). Set with --tls-key; unset, plaintext.
    #[arg(long, env = "PAYMENT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// TLS: the private key of --tls-cert (PEM). Never printed.
    #[arg(long, env = "PAYMENT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: callers must present a certificate signed by this CA (PEM).
    #[arg(long, env = "PAYMENT_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// The CA (PEM) that signed the certificates of auth-service: needed for https:// URLs.
    #[arg(long, env = "PAYMENT_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// Mutual TLS: the certificate (PEM) this service presents to auth-service.
    #[arg(long, env = "PAYMENT_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,

    /// Mutual TLS: the private key of --client-cert (PEM). Never printed.
    #[arg(long, env = "PAYMENT_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
}

/// A service client's secret: never printed (`Debug` shows its length only).
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientSecret(<{} characters>)", self.0.len())
    }
}

impl std::str::FromStr for ClientSecret {
    type Err = std::convert::Infallible;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        Ok(Self(secret.to_owned()))
    }
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

    /// Run the three services over mutual TLS, with a throwaway CA and certificates made for
    /// this run (not with --use-running: give --ca, --client-cert and --client-key instead).
    #[arg(long, env = "DEMO_TLS", conflicts_with = "use_running")]
    pub tls: bool,

    /// With --use-running and https:// URLs: the CA (PEM) that signed the services' certificates.
    #[arg(long, env = "DEMO_CA", requires = "use_running")]
    pub ca: Option<PathBuf>,

    /// With --use-running, for mutual TLS: the client certificate (PEM) to present.
    #[arg(long, env = "DEMO_CLIENT_CERT", requires = "ca")]
    pub client_cert: Option<PathBuf>,

    /// The private key (PEM) of --client-cert. Never printed.
    #[arg(long, env = "DEMO_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// With --use-running: order-service's client secret, for the steps that act as
    /// order-service (an exchange, then a charge, timed against a logout).
    #[arg(long, env = "DEMO_ORDER_CLIENT_SECRET", hide_env_values = true)]
    pub order_client_secret: Option<ClientSecret>,

    /// With --use-running: a management session's access token of an admin, to disable
    /// order-service at the end (it stays disabled: re-enable it by creating a new client).
    #[arg(long, env = "DEMO_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<ClientSecret>,
}

/// Which credential the walkthrough logs in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CredentialChoice {
    /// An opaque session token (only RemoteVerifier can check it).
    Session,
    /// A token pair; the access token is a JWT for the auth service's own audience.
    Tokens,
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
        assert_eq!(payment.required_actor, "order-service");
        assert_eq!(order.client_id, "order-service");
        assert!(order.client_secret.is_none());
        let secret: ClientSecret = "s3cret".parse().unwrap_or_else(|never| match never {});
        assert!(!format!("{secret:?}").contains("s3cret"));
    }
}
