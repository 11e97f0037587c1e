//! The `auth.v1` contract as Rust: generated messages, clients and servers, the descriptor set
//! for gRPC reflection, and what another service needs to authenticate its callers:
//!
//! - [`LocalVerifier`] checks access tokens in-process with the published keys and the pushed
//!   revocation feed (no network call per request, revocations seen within milliseconds);
//! - [`RemoteVerifier`] asks the auth service (`Verify`), and also accepts session tokens;
//! - [`AuthLayer`] plugs either into a tonic server: the verified [`Principal`] lands in the
//!   request extensions (read it with [`principal`]), anything else gets UNAUTHENTICATED.
//!
//! ```no_run
//! # async fn demo(channel: tonic::transport::Channel) -> Result<(), Box<dyn std::error::Error>> {
//! use auth_api::{AuthLayer, LocalVerifier, LocalVerifierConfig};
//! let verifier = LocalVerifier::connect(channel, LocalVerifierConfig::new("payments")).await?;
//! let layer = AuthLayer::new(verifier).require_role("billing");
//! // Server::builder().add_service(layer.layer(PaymentServiceServer::new(service)))
//! # Ok(()) }
//! ```

pub mod v1 {
    #![allow(clippy::all)]
    tonic::include_proto!("auth.v1");

    /// Encoded `FileDescriptorSet` of `auth.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("auth_v1_descriptor");
}

pub mod access_token;
mod layer;
mod local_verifier;
mod redact;
mod remote_verifier;

pub use layer::{AuthLayer, Authenticated, Verifier, VerifyError, bearer_token, principal};
pub use local_verifier::{LocalVerifier, LocalVerifierConfig};
pub use remote_verifier::RemoteVerifier;
pub use v1::Principal;

/// The gRPC error domain carried in every `google.rpc.ErrorInfo` this service returns.
pub const ERROR_DOMAIN: &str = "auth.v1";
