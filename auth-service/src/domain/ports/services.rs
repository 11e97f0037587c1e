//! The records of service accounts (`domain/services.rs`): a client, its current secret and the
//! one a rotation replaced, each secret naming the session that is its credential generation.

use crate::domain::Timestamp;

/// A service client as stored (its principal row in `users` holds the disabled mark).
#[derive(Clone)]
pub struct ServiceClientRecord {
    /// The client id, which is its name (`order-service`) and its principal's user id.
    pub id: String,
    /// Space-separated audiences its own tokens may be issued for.
    pub audiences: String,
    /// Space-separated audiences it may exchange users' credentials into.
    pub exchange_audiences: String,
    /// A bound mutual-TLS identity (certificate subject or URI SAN).
    pub mtls_identity: Option<String>,
    pub created_at: Timestamp,
    /// When an administrator disabled it (the principal's `suspended_at`).
    pub disabled_at: Option<Timestamp>,
    /// SHA-256 of the current secret, and the session that is its generation.
    pub secret_hash: Vec<u8>,
    pub generation: String,
    /// The secret a rotation replaced, valid until `previous_valid_until`.
    pub previous_secret_hash: Option<Vec<u8>>,
    pub previous_generation: Option<String>,
    pub previous_valid_until: Option<Timestamp>,
    /// How many rotations happened: the compare-and-set guard of the next one.
    pub rotations: i64,
}

impl std::fmt::Debug for ServiceClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClientRecord")
            .field("id", &self.id)
            .field("audiences", &self.audiences)
            .field("generation", &self.generation)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

/// A secret rotation, written atomically by `Store::rotate_service_secret`: the new generation's
/// session is inserted and the client row swapped if it still has `expected_rotations`.
pub struct ServiceRotation<'a> {
    pub client_id: &'a str,
    pub expected_rotations: i64,
    pub secret_hash: Vec<u8>,
    pub generation: &'a super::NewSession,
    /// The replaced generation and until when its secret is still accepted.
    pub previous_generation: &'a str,
    pub previous_secret_hash: &'a [u8],
    pub previous_valid_until: Timestamp,
}

/// A generation whose overlap window has passed: its session is to be ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LapsedGeneration {
    pub client_id: String,
    pub session_id: String,
}
