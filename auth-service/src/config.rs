//! Configuration: every setting is a flag and an environment variable. Durations use the
//! humantime form (`15m`, `7d`, `2s`). The database URL may carry a password, so it lives in a
//! type whose `Debug` does not print it.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::domain::limits::{FAILURE_MEMORY, LimitPolicy, LockoutRule};
use crate::{
    domain::{Policy, gateway::GatewayPolicy},
    engine::hashing::HashingParams,
};

#[derive(Debug, Parser)]
#[command(
    name = "auth-service",
    version,
    about = "Login, tokens and sessions for a fleet of services, over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (what `auth-service` with no command does).
    Serve,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the access-token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
        /// A role to grant (repeatable), e.g. `--role admin`.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Publish a new signing key; it signs after the activation delay, and running servers pick
    /// it up without a restart.
    Rotate {
        /// Overrides AUTH_KEY_ACTIVATION_DELAY for this rotation.
        #[arg(long, value_parser = humantime::parse_duration)]
        activate_in: Option<Duration>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Whether `Verify` may answer for a recently seen session from memory
/// (`engine/session_cache.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionCache {
    /// On where this replica hears of every revocation: with Redis (the fan-out), or with the
    /// embedded SQLite (one process). Off for PostgreSQL without Redis, where other replicas'
    /// revocations would only be seen in the database.
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the gRPC server listens on.
    #[arg(
        long,
        env = "AUTH_LISTEN_ADDR",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen_addr: SocketAddr,

    /// Directory of the embedded SQLite database (used when DATABASE_URL is unset).
    #[arg(long, env = "AUTH_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// `postgres://user@host/db` for PostgreSQL, or `sqlite:path` for a SQLite file elsewhere.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<SecretString>,

    /// `redis://host:port`: share revocations between replicas. Without it, one process.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<SecretString>,

    /// With Redis, how often each replica re-reads recent revocations from the database (the
    /// safety net under pub/sub, which may drop messages while Redis is unreachable).
    #[arg(long, env = "AUTH_REVOCATION_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration, global = true)]
    pub revocation_poll_interval: Duration,

    /// Answer `Verify` for recently seen live sessions from memory (see `SessionCache`).
    #[arg(
        long,
        env = "AUTH_SESSION_CACHE",
        value_enum,
        default_value = "auto",
        global = true
    )]
    pub session_cache: SessionCache,

    /// How long a remembered session is trusted before it is read again.
    #[arg(long, env = "AUTH_SESSION_CACHE_TTL", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub session_cache_ttl: Duration,

    /// How often the revocation feed sends a heartbeat.
    #[arg(long, env = "AUTH_FEED_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub feed_heartbeat_interval: Duration,

    /// `iss` of the access tokens.
    #[arg(long, env = "AUTH_ISSUER", default_value = "auth", global = true)]
    pub issuer: String,

    /// `aud` of the access tokens, and the audience Verify requires when none is given.
    #[arg(long, env = "AUTH_AUDIENCE", default_value = "api", global = true)]
    pub audience: String,

    #[arg(long, env = "AUTH_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = humantime::parse_duration, global = true)]
    pub access_token_ttl: Duration,

    #[arg(long, env = "AUTH_REFRESH_TOKEN_TTL", default_value = "7d", value_parser = humantime::parse_duration, global = true)]
    pub refresh_token_ttl: Duration,

    /// A session-token session ends after this long without use.
    #[arg(long, env = "AUTH_SESSION_IDLE_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration, global = true)]
    pub session_idle_timeout: Duration,

    /// The absolute end of every session, however active; caps every refresh.
    #[arg(long, env = "AUTH_SESSION_MAX_LIFETIME", default_value = "30d", value_parser = humantime::parse_duration, global = true)]
    pub session_max_lifetime: Duration,

    /// How long the predecessor of a session's refresh token may be presented again (0 disables).
    #[arg(long, env = "AUTH_REFRESH_REUSE_GRACE", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub refresh_reuse_grace: Duration,

    /// Live sessions per user; a login beyond it ends the oldest.
    #[arg(long, env = "AUTH_MAX_SESSIONS_PER_USER", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_sessions_per_user: u32,

    /// Whether the Register RPC creates accounts.
    #[arg(long, env = "AUTH_ALLOW_REGISTRATION", default_value_t = true, action = ArgAction::Set, global = true)]
    pub allow_registration: bool,

    /// Lifetime of tokens minted by ExchangeToken (capped at the access token lifetime).
    #[arg(long, env = "AUTH_EXCHANGE_TOKEN_TTL", default_value = "5m", value_parser = humantime::parse_duration, global = true)]
    pub exchange_token_ttl: Duration,

    /// Comma-separated audiences ExchangeToken may mint for (empty: any).
    #[arg(
        long,
        env = "AUTH_EXCHANGE_AUDIENCES",
        value_delimiter = ',',
        global = true
    )]
    pub exchange_audiences: Vec<String>,

    /// ext_authz: the cookie that carries a browser's session token.
    #[arg(
        long,
        env = "AUTH_SESSION_COOKIE_NAME",
        default_value = "auth_session",
        global = true
    )]
    pub session_cookie_name: String,

    /// ext_authz: comma-separated origins allowed to send cookie-authenticated unsafe requests
    /// (empty: only the request's own scheme://host).
    #[arg(
        long,
        env = "AUTH_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_origins: Vec<String>,

    /// ext_authz: a header cookie-authenticated unsafe requests must carry (unset: none).
    #[arg(long, env = "AUTH_CSRF_HEADER", global = true)]
    pub csrf_header: Option<String>,

    /// Clock skew tolerated when checking `exp`, `nbf` and `iat`.
    #[arg(long, env = "AUTH_TOKEN_LEEWAY", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub token_leeway: Duration,

    /// Rotate the signing key automatically this long after the last rotation (0 disables).
    #[arg(long, env = "AUTH_KEY_ROTATION_PERIOD", default_value = "30d", value_parser = humantime::parse_duration, global = true)]
    pub key_rotation_period: Duration,

    /// A new key is published this long before it signs, so every verifier knows it in time.
    #[arg(long, env = "AUTH_KEY_ACTIVATION_DELAY", default_value = "5m", value_parser = humantime::parse_duration, global = true)]
    pub key_activation_delay: Duration,

    /// How often a running server re-reads the keys (to see rotations made elsewhere).
    #[arg(long, env = "AUTH_KEY_RELOAD_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub key_reload_interval: Duration,

    /// Log format: human-readable `text` or `json` (one object per line).
    #[arg(long, env = "AUTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Serve Prometheus metrics at `http://ADDR/metrics` (off when unset).
    #[arg(long, env = "AUTH_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// How often health checks probe the database (and Redis).
    #[arg(long, env = "AUTH_HEALTH_CHECK_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration, global = true)]
    pub health_check_interval: Duration,

    /// Largest request message accepted; larger ones get INVALID_ARGUMENT (REQUEST_TOO_LARGE).
    #[arg(long, env = "AUTH_MAX_REQUEST_BYTES", default_value_t = 64 * 1024, global = true)]
    pub max_request_bytes: usize,

    /// Largest total size of a request's metadata (HTTP/2 header list).
    #[arg(long, env = "AUTH_MAX_METADATA_BYTES", default_value_t = 16 * 1024, global = true)]
    pub max_metadata_bytes: u32,

    /// Concurrent calls (HTTP/2 streams) per client connection.
    #[arg(
        long,
        env = "AUTH_MAX_CONCURRENT_STREAMS",
        default_value_t = 256,
        global = true
    )]
    pub max_concurrent_streams: u32,

    /// Deadline for a call whose client set none (and the most any unary call may take).
    #[arg(long, env = "AUTH_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub request_timeout: Duration,

    /// On SIGTERM, how long in-flight calls may take before the server stops anyway.
    #[arg(long, env = "AUTH_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub shutdown_grace: Duration,

    /// argon2id memory in KiB (at least 19456).
    #[arg(long, env = "AUTH_ARGON2_MEMORY_KIB", default_value_t = 19_456, value_parser = clap::value_parser!(u32).range(19_456..), global = true)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations (at least 2).
    #[arg(long, env = "AUTH_ARGON2_ITERATIONS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..), global = true)]
    pub argon2_iterations: u32,

    /// Password hashes computed at once (default: the number of CPUs).
    #[arg(long, env = "AUTH_HASHING_CONCURRENCY", global = true)]
    pub hashing_concurrency: Option<usize>,

    /// Logins that may wait for a hashing slot; beyond it Login answers RESOURCE_EXHAUSTED
    /// (OVERLOADED) at once. 0: no limit.
    #[arg(
        long,
        env = "AUTH_HASHING_QUEUE_LIMIT",
        default_value_t = 64,
        global = true
    )]
    pub hashing_queue_limit: usize,

    /// Shortest new password, in characters (at least 8).
    #[arg(long, env = "AUTH_PASSWORD_MIN_LENGTH", default_value_t = 8, value_parser = clap::value_parser!(u16).range(8..=1024), global = true)]
    pub password_min_length: u16,

    /// Login, Register and Refresh calls per client IP address per minute, each (0: no limit).
    #[arg(
        long,
        env = "AUTH_LOGIN_RATE_PER_ADDRESS",
        default_value_t = 30,
        global = true
    )]
    pub login_rate_per_address: u32,

    /// Failed logins on one account (known or not) before it is locked (0: no lockout).
    #[arg(
        long,
        env = "AUTH_ACCOUNT_LOCKOUT_THRESHOLD",
        default_value_t = 5,
        global = true
    )]
    pub account_lockout_threshold: u32,

    /// The first lock; each further failure doubles it, up to AUTH_ACCOUNT_LOCKOUT_MAX.
    #[arg(long, env = "AUTH_ACCOUNT_LOCKOUT_BASE", default_value = "1s", value_parser = humantime::parse_duration, global = true)]
    pub account_lockout_base: Duration,

    /// The longest lock of an account.
    #[arg(long, env = "AUTH_ACCOUNT_LOCKOUT_MAX", default_value = "15m", value_parser = humantime::parse_duration, global = true)]
    pub account_lockout_max: Duration,

    /// Prefix of the rate-limit keys in Redis (for several deployments sharing one Redis).
    #[arg(
        long,
        env = "AUTH_LIMITS_KEY_PREFIX",
        default_value = "auth.v1",
        global = true
    )]
    pub limits_key_prefix: String,

    /// TLS: the server's certificate chain (PEM). Set with AUTH_TLS_KEY; unset, the listener
    /// speaks plaintext (h2c).
    #[arg(long, env = "AUTH_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// TLS: the private key of AUTH_TLS_CERT (PEM, PKCS#8, PKCS#1 or SEC1). Read at start and
    /// never printed.
    #[arg(long, env = "AUTH_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: the CA certificate (PEM) that clients' certificates must be signed by; a
    /// client without such a certificate cannot connect. Needs AUTH_TLS_CERT and AUTH_TLS_KEY.
    #[arg(long, env = "AUTH_TLS_CLIENT_CA", global = true)]
    pub tls_client_ca: Option<PathBuf>,
}

impl Settings {
    /// The settings with every default, as if no flag or variable were given.
    pub fn defaults() -> Self {
        Cli::parse_from(["auth-service"]).settings
    }

    /// The listener's TLS settings, read from the PEM files now: `None` means plaintext.
    pub fn server_tls(&self) -> Result<Option<auth_api::tls::ServerTls>, auth_api::tls::TlsError> {
        auth_api::tls::ServerTls::from_files(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_client_ca.as_deref(),
        )
    }

    pub fn policy(&self) -> Policy {
        Policy {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            session_idle_timeout: self.session_idle_timeout,
            session_max_lifetime: self.session_max_lifetime,
            refresh_reuse_grace: self.refresh_reuse_grace,
            max_sessions_per_user: self.max_sessions_per_user,
            allow_registration: self.allow_registration,
            leeway: self.token_leeway,
            exchange_token_ttl: self.exchange_token_ttl,
            exchange_audiences: self
                .exchange_audiences
                .iter()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect(),
            password_min_chars: usize::from(self.password_min_length),
            limits: self.limits(),
        }
    }

    /// Whether the session cache is on, given the configured stores.
    pub fn session_cache_on(&self) -> bool {
        let postgres = self
            .database_url
            .as_ref()
            .is_some_and(|url| crate::store::is_postgres_url(url.expose()));
        match self.session_cache {
            SessionCache::On => true,
            SessionCache::Off => false,
            SessionCache::Auto => self.redis_url.is_some() || !postgres,
        }
    }

    /// How long an access token can outlive the revocation of its session.
    pub fn tokens_outlive_revocation_by(&self) -> Duration {
        self.access_token_ttl + self.token_leeway
    }

    /// The ext_authz gateway's cookie and CSRF rules.
    pub fn gateway_policy(&self) -> GatewayPolicy {
        GatewayPolicy {
            session_cookie_name: self.session_cookie_name.clone(),
            allowed_origins: self.allowed_origins.clone(),
            csrf_header: self.csrf_header.clone(),
        }
    }

    pub fn hashing(&self) -> HashingParams {
        let defaults = HashingParams::default();
        HashingParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: defaults.parallelism,
            concurrency: self.hashing_concurrency.unwrap_or(defaults.concurrency),
            queue_limit: self.hashing_queue_limit,
        }
    }

    /// The brute-force limits (per client address, per account).
    pub fn limits(&self) -> LimitPolicy {
        LimitPolicy {
            per_address: self.login_rate_per_address,
            lockout: LockoutRule {
                threshold: self.account_lockout_threshold,
                base: self.account_lockout_base,
                max: self.account_lockout_max.max(self.account_lockout_base),
                memory: FAILURE_MEMORY,
            },
        }
    }
}

/// A string that is never printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretString {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let settings = Settings::defaults();
        assert_eq!(settings.listen_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(settings.access_token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(
            settings.refresh_token_ttl,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(settings.session_idle_timeout, Duration::from_secs(3600));
        assert_eq!(settings.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(settings.max_sessions_per_user, 10);
        assert!(settings.allow_registration);
    }

    #[test]
    fn the_session_cache_is_on_by_default_only_where_every_revocation_is_heard() {
        let mut settings = Settings::defaults();
        assert!(settings.session_cache_on(), "embedded SQLite: one process");
        settings.database_url = Some(SecretString::new("postgres://db/auth"));
        assert!(
            !settings.session_cache_on(),
            "PostgreSQL alone: replicas unheard"
        );
        settings.redis_url = Some(SecretString::new("redis://cache"));
        assert!(
            settings.session_cache_on(),
            "PostgreSQL with the Redis fan-out"
        );
        settings.session_cache = SessionCache::Off;
        assert!(!settings.session_cache_on());
    }

    #[test]
    fn flags_parse_humantime_durations_and_booleans() {
        let cli = Cli::parse_from([
            "auth-service",
            "--access-token-ttl",
            "2s",
            "--allow-registration",
            "false",
        ]);
        assert_eq!(cli.settings.access_token_ttl, Duration::from_secs(2));
        assert!(!cli.settings.allow_registration);
    }

    #[test]
    fn the_database_url_is_not_printed() {
        let settings = Settings {
            database_url: Some(SecretString::new("postgres://user:hunter2@db/auth")),
            ..Settings::defaults()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn tls_is_off_by_default_and_a_certificate_without_its_key_is_refused() {
        assert!(matches!(Settings::defaults().server_tls(), Ok(None)));
        let cli = Cli::parse_from(["auth-service", "--tls-cert", "/etc/auth/server.pem"]);
        assert!(cli.settings.server_tls().is_err());
    }
}
