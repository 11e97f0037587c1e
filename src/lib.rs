//! The `auth.v1` contract as Rust: generated messages, clients and servers, plus the descriptor
//! set for gRPC reflection. Services that authenticate through the auth service depend on this
//! crate and nothing else of it.

pub mod v1 {
    #![allow(clippy::all)]
    tonic::include_proto!("auth.v1");

    /// Encoded `FileDescriptorSet` of `auth.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("auth_v1_descriptor");
}

pub mod access_token;
mod redact;

/// The gRPC error domain carried in every `google.rpc.ErrorInfo` this service returns.
pub const ERROR_DOMAIN: &str = "auth.v1";
