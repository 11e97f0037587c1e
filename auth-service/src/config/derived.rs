//! What each part of the service is built from, derived from the flat [`Settings`]: the domain's
//! [`Policy`] and brute-force limits, the ext_authz gateway's rules, the argon2 parameters, the
//! listener's TLS, and whether the session cache is on. Kept together so that a setting's meaning
//! is read in one place rather than at every call site.

use std::time::Duration;

use super::{SessionCache, Settings};
use crate::domain::limits::{FAILURE_MEMORY, KNOWN_NETWORK_MEMORY, LimitPolicy, LockoutRule};
use crate::{
    domain::{Policy, gateway::GatewayPolicy},
    engine::hashing::HashingParams,
};

impl Settings {
    /// The listener's TLS settings, read from the PEM files now: `None` means plaintext.
    pub fn server_tls(&self) -> Result<Option<auth_api::tls::ServerTls>, auth_api::tls::TlsError> {
        auth_api::tls::ServerTls::from_files(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_client_ca.as_deref(),
        )
    }

    /// Settings that parse but contradict each other, or the rules: a message for the operator.
    pub fn contradictions(&self) -> Result<(), String> {
        let management = self.management_audience.as_str();
        if management.is_empty() || self.audience.is_empty() {
            return Err("AUTH_AUDIENCE and AUTH_MANAGEMENT_AUDIENCE must not be empty".into());
        }
        if management == self.audience {
            return Err(format!(
                "AUTH_MANAGEMENT_AUDIENCE must differ from AUTH_AUDIENCE (both are {management:?}): \
                 tokens the apps receive must not manage accounts"
            ));
        }
        if self.exchange_audiences.iter().any(|a| a == management) {
            return Err(format!(
                "AUTH_EXCHANGE_AUDIENCES must not list the management audience {management:?}"
            ));
        }
        self.http.listen_addr()?;
        self.http.public_url()?;
        self.retention_contradictions()?;
        self.nonsensical_combinations()
    }

    pub fn policy(&self) -> Policy {
        Policy {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            management_audience: self.management_audience.clone(),
            admin_max_auth_age: self.admin_max_auth_age,
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

    /// How long a client may cache the JWKS served over HTTP (`Cache-Control: max-age`): half of
    /// what is left of the key activation delay once a running server has re-read the keys. A
    /// verifier that caches that long refetches at least twice between a rotation's publication
    /// and its activation, so it knows the new key before any token is signed with it.
    pub fn jwks_max_age(&self) -> Duration {
        self.key_activation_delay
            .saturating_sub(self.key_reload_interval)
            / 2
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

    /// The caps on open revocation feed streams.
    pub fn feed_stream_caps(&self) -> crate::grpc::feed_streams::FeedStreamCaps {
        crate::grpc::feed_streams::FeedStreamCaps {
            per_connection: self.max_feed_streams_per_connection,
            per_address: self.max_feed_streams_per_address,
        }
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

    /// The brute-force limits (per client network, per account and network, per account).
    pub fn limits(&self) -> LimitPolicy {
        LimitPolicy {
            per_address: self.login_rate_per_address,
            refresh_per_address: self.refresh_rate_per_address,
            lockout: LockoutRule {
                threshold: self.account_lockout_threshold,
                base: self.account_lockout_base,
                max: self.account_lockout_max.max(self.account_lockout_base),
                memory: FAILURE_MEMORY,
                ceiling: self.account_lockout_ceiling,
                known_memory: KNOWN_NETWORK_MEMORY,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::config::{Cli, SecretString};

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
    fn tls_is_off_by_default_and_a_certificate_without_its_key_is_refused() {
        assert!(matches!(Settings::defaults().server_tls(), Ok(None)));
        let cli = Cli::parse_from(["auth-service", "--tls-cert", "/etc/auth/server.pem"]);
        assert!(cli.settings.server_tls().is_err());
    }
}
