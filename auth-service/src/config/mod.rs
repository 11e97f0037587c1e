//! Configuration: every setting is a flag and an environment variable. Durations use the
//! humantime form (`15m`, `7d`, `2s`). The database URL may carry a password, so it lives in a
//! type whose `Debug` does not print it.
//!
//! This module owns the settings themselves ([`Settings`], one field per flag, and the value types
//! of its fields); `cli` owns the command line around them (the subcommands), `derived` what each
//! part of the service is built from (the domain's `Policy`, hashing parameters, TLS, ...), and
//! `secret` the redacting string type. Settings of one concern live in their own file and are
//! flattened in: `secret_files` (`DATABASE_URL_FILE`, `REDIS_URL_FILE`), `dependency_tls` (TLS to
//! Redis); `checks` refuses nonsensical combinations and `summary` writes the start-up line.

mod accounts;
mod checks;
mod cli;
mod dependency_tls;
mod derived;
mod http;
mod secret;
mod secret_files;
mod storage;
mod summary;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgAction, Args, ValueEnum};

use crate::domain::client_address::TrustedProxies;

pub use accounts::{AccountSettings, NotifierKind};
pub use cli::{Cli, Command, HealthcheckArgs, KeysCommand, UserCommand};
pub use dependency_tls::RedisTlsFiles;
pub use http::HttpSettings;
pub use secret::SecretString;
pub use secret_files::SecretFiles;
pub use storage::StorageSettings;
pub use summary::redacted_url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Whether `Verify` may answer for a recently seen session from memory
/// (`engine/session_cache.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionCache {
    /// On where this replica hears of every revocation at once: with Redis (the fan-out), or
    /// with the embedded SQLite (one process). Off for PostgreSQL without Redis, where other
    /// replicas' revocations are only seen at the next re-read of the database (`On` accepts
    /// that delay of up to AUTH_REVOCATION_POLL_INTERVAL).
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

    /// `postgres://user@host/db?sslmode=verify-full&sslrootcert=ca.pem` for PostgreSQL, or
    /// `sqlite:path` for a SQLite file elsewhere. Or DATABASE_URL_FILE.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<SecretString>,

    /// `redis://host:port`, or `rediss://host:port` for TLS: share revocations between replicas.
    /// Without it, one process. Or REDIS_URL_FILE.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<SecretString>,

    #[command(flatten)]
    pub secret_files: SecretFiles,

    #[command(flatten)]
    pub redis_tls_files: RedisTlsFiles,

    /// How often each replica re-reads the database's change log (revocations, role changes):
    /// with Redis, the safety net under pub/sub (which may drop messages); without it, how soon
    /// one replica learns of another's revocations.
    #[arg(long, env = "AUTH_REVOCATION_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration, global = true)]
    pub revocation_poll_interval: Duration,

    /// Prefix of the Redis pub/sub channels (`{prefix}:revocations`), for several deployments
    /// sharing one Redis.
    #[arg(
        long,
        env = "AUTH_REDIS_CHANNEL_PREFIX",
        default_value = "auth.v1",
        global = true
    )]
    pub redis_channel_prefix: String,

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

    /// `aud` of the access tokens of management sessions (Login with `management`), the only
    /// access tokens the session-management, password and admin RPCs accept. Not AUTH_AUDIENCE.
    #[arg(
        long,
        env = "AUTH_MANAGEMENT_AUDIENCE",
        default_value = "auth-management",
        global = true
    )]
    pub management_audience: String,

    /// AdminService refuses a management session whose login is older than this.
    #[arg(long, env = "AUTH_ADMIN_MAX_AUTH_AGE", default_value = "15m", value_parser = humantime::parse_duration, global = true)]
    pub admin_max_auth_age: Duration,

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

    /// Comma-separated audiences ExchangeToken may mint for (empty: none). Never the management
    /// audience.
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

    /// The HTTP listener: key discovery, probes and metrics (`config/http.rs`).
    #[command(flatten)]
    pub http: HttpSettings,

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

    /// Open `WatchRevocations` streams per client connection (0: no cap).
    #[arg(
        long,
        env = "AUTH_MAX_FEED_STREAMS_PER_CONNECTION",
        default_value_t = 8,
        global = true
    )]
    pub max_feed_streams_per_connection: usize,

    /// Open `WatchRevocations` streams per client IP address (0: no cap). Behind a sidecar every
    /// client shares one address: raise it to the fleet's local verifiers.
    #[arg(
        long,
        env = "AUTH_MAX_FEED_STREAMS_PER_ADDRESS",
        default_value_t = 256,
        global = true
    )]
    pub max_feed_streams_per_address: usize,

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

    /// Login and Register calls per client network (IPv4 address, IPv6 /64) per minute, each
    /// (0: no limit).
    #[arg(
        long,
        env = "AUTH_LOGIN_RATE_PER_ADDRESS",
        default_value_t = 30,
        global = true
    )]
    pub login_rate_per_address: u32,

    /// Refresh calls per client network per minute (0: no limit).
    #[arg(
        long,
        env = "AUTH_REFRESH_RATE_PER_ADDRESS",
        default_value_t = 600,
        global = true
    )]
    pub refresh_rate_per_address: u32,

    /// Comma-separated proxies (IP addresses or CIDR blocks) whose `X-Forwarded-For` (and, for
    /// ext_authz, the request's source) names the client (empty: the TCP peer is the client).
    #[arg(
        long,
        env = "AUTH_TRUSTED_PROXIES",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_trusted_proxies,
        global = true
    )]
    pub trusted_proxies: TrustedProxies,

    /// Failed logins on one account from one client network (whether the account exists or
    /// not) before that network is locked out of it (0: no lockout).
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

    /// The longest lock, and how long the account-wide ceiling locks the account.
    #[arg(long, env = "AUTH_ACCOUNT_LOCKOUT_MAX", default_value = "15m", value_parser = humantime::parse_duration, global = true)]
    pub account_lockout_max: Duration,

    /// Failed logins on one account from all networks before it is locked for every network
    /// but those it was logged into from (0: no account-wide lock; at most 100, NIST SP 800-63B).
    #[arg(long, env = "AUTH_ACCOUNT_LOCKOUT_CEILING", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100), global = true)]
    pub account_lockout_ceiling: u32,

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

    /// Signing keys at rest and the pruning of ended data (`storage.rs`).
    #[command(flatten)]
    pub storage: StorageSettings,

    /// Email verification and password reset, and the notifier (`config/accounts.rs`).
    #[command(flatten)]
    pub accounts: AccountSettings,
}

/// `AUTH_TRUSTED_PROXIES`: a bad entry stops the start with the reason.
fn parse_trusted_proxies(text: &str) -> Result<TrustedProxies, String> {
    text.parse()
}

impl Settings {
    /// The settings with every default, as if no flag or variable were given: the environment
    /// is not read, so tests and embedders start from the documented defaults whatever a
    /// developer has exported.
    pub fn defaults() -> Self {
        let command = <Cli as clap::CommandFactory>::command().mut_args(|arg| arg.env(None));
        let matches = command.get_matches_from(["auth-service"]);
        match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
            Ok(cli) => cli.settings,
            // Every argument has a default; a failure here is a bug in the definitions above.
            Err(error) => error.exit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// Run by `defaults_ignore_the_environment` in a child process with `AUTH_*` set.
    #[test]
    #[ignore = "run by defaults_ignore_the_environment, with the environment it sets"]
    fn defaults_seen_with_a_developers_environment() {
        assert!(std::env::var_os("AUTH_SESSION_CACHE").is_some());
        let settings = Settings::defaults();
        assert!(matches!(settings.session_cache, SessionCache::Auto));
        assert_eq!(settings.listen_addr.to_string(), "127.0.0.1:50051");
    }

    #[test]
    fn defaults_ignore_the_environment() -> Result<(), std::io::Error> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "config::tests::defaults_seen_with_a_developers_environment",
                "--ignored",
                "--quiet",
            ])
            .env("AUTH_SESSION_CACHE", "off")
            .env("AUTH_LISTEN_ADDR", "127.0.0.1:1")
            .output()?;
        assert!(
            child.status.success(),
            "Settings::defaults() read the environment: {}",
            String::from_utf8_lossy(&child.stdout)
        );
        Ok(())
    }

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
        assert!(settings.trusted_proxies.to_string().is_empty());
        assert_eq!(settings.login_rate_per_address, 30);
        assert_eq!(settings.refresh_rate_per_address, 600);
        assert_eq!(settings.account_lockout_ceiling, 100);
    }

    #[test]
    fn trusted_proxies_parse_and_a_bad_one_fails_the_start_with_the_reason() {
        let cli = Cli::parse_from([
            "auth-service",
            "--trusted-proxies",
            "10.0.0.0/8, 2001:db8::/32,192.0.2.1",
        ]);
        assert_eq!(
            cli.settings.trusted_proxies.to_string(),
            "10.0.0.0/8,2001:db8::/32,192.0.2.1/32"
        );
        let empty = Cli::parse_from(["auth-service", "--trusted-proxies", ""]);
        assert!(empty.settings.trusted_proxies.to_string().is_empty());
        for bad in ["10.0.0.0/33", "10.0.0.1/8", "proxy.internal"] {
            let error = Cli::try_parse_from(["auth-service", "--trusted-proxies", bad])
                .expect_err(bad)
                .to_string();
            assert!(
                error.contains("--trusted-proxies") && error.contains(bad),
                "{error}"
            );
        }
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
}
