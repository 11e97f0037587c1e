//! The knobs of the service's behaviour, as the rules see them (`config.rs` builds them).

use std::time::Duration;

use super::limits::LimitPolicy;

/// The knobs of the service's behaviour (all from configuration).
#[derive(Clone, Debug)]
pub struct Policy {
    pub issuer: String,
    /// The apps' audience: access tokens of app sessions, and what ext_authz forwards upstream.
    pub audience: String,
    /// The audience of the access tokens of management sessions (`Login` with `management`):
    /// the only tokens, with those sessions' session tokens, that the management RPCs accept.
    pub management_audience: String,
    /// How long after its login a management session may still call `AdminService`.
    pub admin_max_auth_age: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_idle_timeout: Duration,
    pub session_max_lifetime: Duration,
    pub refresh_reuse_grace: Duration,
    pub max_sessions_per_user: u32,
    pub allow_registration: bool,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Lifetime of a token minted by ExchangeToken (never longer than an access token's).
    pub exchange_token_ttl: Duration,
    /// Audiences ExchangeToken may mint for; empty means none (never the management audience).
    pub exchange_audiences: Vec<String>,
    /// Shortest new password, in characters (never below 8).
    pub password_min_chars: usize,
    /// Per-address throttle and per-account lockout.
    pub limits: LimitPolicy,
}
