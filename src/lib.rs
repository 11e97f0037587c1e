//! The `auth.v1` contract as Rust: generated messages, clients and servers, the descriptor set
//! for gRPC reflection, and what another service needs to authenticate its callers:
//!
//! - [`LocalVerifier`] checks access tokens in-process with the published keys and the pushed
//!   revocation feed (no network call per request, revocations seen within milliseconds);
//! - [`RemoteVerifier`] asks the auth service (`Verify`), and also accepts session tokens;
//! - [`AuthLayer`] plugs either into a tonic server: the verified [`Principal`] lands in the
//!   request extensions (read it with [`principal`]), anything else gets UNAUTHENTICATED;
//! - [`tls`] makes the channels they use (and the servers' listeners) TLS or mutual TLS.
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

/// Envoy's external authorization API (`envoy.service.auth.v3.Authorization/Check`), generated
/// from the wire-compatible subset in `proto/envoy/`. The auth service implements it so Envoy or
/// Istio can guard any HTTP or gRPC backend; `google.rpc.Status` is [`tonic_types::pb::Status`].
pub mod envoy {
    pub mod service {
        pub mod auth {
            pub mod v3 {
                #![allow(clippy::all)]
                tonic::include_proto!("envoy.service.auth.v3");
            }
        }
    }
    pub mod config {
        pub mod core {
            pub mod v3 {
                #![allow(clippy::all)]
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    pub mod r#type {
        pub mod v3 {
            #![allow(clippy::all)]
            // prost names the file after the Rust path, where `type` is a raw identifier.
            tonic::include_proto!("envoy.r#type.v3");
        }
    }

    /// Encoded `FileDescriptorSet` of the subset, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("envoy_ext_authz_descriptor");

    // Header values and request attributes carry bearer tokens and cookies: never print them.
    impl std::fmt::Debug for config::core::v3::HeaderValue {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HeaderValue")
                .field("key", &self.key)
                .field("value", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for service::auth::v3::attribute_context::HttpRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let mut header_names: Vec<&str> = self.headers.keys().map(String::as_str).collect();
            header_names.sort_unstable();
            f.debug_struct("HttpRequest")
                .field("id", &self.id)
                .field("method", &self.method)
                // The query string may carry a token.
                .field("path", &self.path.split('?').next())
                .field("host", &self.host)
                .field("scheme", &self.scheme)
                .field("header_names", &header_names)
                .field("header_map", &self.header_map)
                .finish()
        }
    }
}

pub mod access_token;
mod backoff;
mod layer;
mod local_verifier;
mod redact;
mod remote_verifier;
pub mod revoked_set;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod tls;
pub mod verified_tokens;

pub use layer::{AuthLayer, Authenticated, Verifier, VerifyError, bearer_token, principal};
pub use local_verifier::{LocalVerifier, LocalVerifierConfig};
pub use remote_verifier::RemoteVerifier;
pub use v1::Principal;

/// The proto kind of a principal: a service client's or a user's.
pub fn principal_kind(service: bool) -> v1::PrincipalKind {
    if service {
        v1::PrincipalKind::Service
    } else {
        v1::PrincipalKind::User
    }
}

/// The gRPC error domain carried in every `google.rpc.ErrorInfo` this service returns.
pub const ERROR_DOMAIN: &str = "auth.v1";
