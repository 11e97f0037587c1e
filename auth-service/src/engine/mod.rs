//! What makes the rules fast, and the only code beside `domain/time.rs` that may read the clock:
//! the argon2 hashing threads ([`hashing`]), batched Ed25519 checks ([`signatures`]) and the key
//! ring ([`keys`]; [`key_seal`] and [`keys_at_rest`] keep the private halves sealed in the
//! database), the session cache ([`session_cache`]), the revocation hub that spreads news to
//! caches, feeds and other replicas ([`hub`]), reading the change log it re-reads ([`changes`]) and
//! following it ([`feed`]), the ext_authz revoked set ([`decision_cache`]), and the [`pruner`]
//! that deletes what no rule needs any more, and the [`notifier`] that delivers account codes
//! (log, webhook, SMTP) off the request path. Each serves the rules through a port of
//! `domain::ports`; none decides who may do what.
#![allow(clippy::disallowed_methods)]

pub mod changes;
pub mod decision_cache;
pub mod feed;
pub mod hashing;
pub mod hub;
pub mod key_ring;
pub mod key_seal;
pub mod keys;
pub mod keys_at_rest;
pub mod notifier;
pub mod pruner;
pub mod service_secrets;
pub mod session_cache;
pub mod signatures;
