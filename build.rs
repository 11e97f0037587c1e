//! Compiles `proto/` into the `auth-api` library: message types, tonic clients and servers, and
//! the encoded descriptor set that the server's reflection service publishes.

use std::{env, path::PathBuf};

/// Messages that carry a password or a token: prost's derived `Debug` would print them, so
/// `src/redact.rs` implements a redacting `Debug` instead.
const MESSAGES_WITH_SECRETS: &[&str] = &[
    "auth.v1.RegisterRequest",
    "auth.v1.LoginRequest",
    "auth.v1.TokenPair",
    "auth.v1.SessionCredential",
    "auth.v1.VerifyRequest",
    "auth.v1.RefreshRequest",
    "auth.v1.LogoutRequest",
    "auth.v1.ChangePasswordRequest",
    "auth.v1.ExchangeTokenRequest",
    "auth.v1.ExchangeTokenResponse",
    "auth.v1.CreateUserRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc keeps "install protoc" out of every set-up guide.
    if env::var_os("PROTOC").is_none() {
        set_protoc(protoc_bin_vendored::protoc_bin_path()?);
    }
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    // Envoy's external authorization API, as a wire-compatible subset (see the proto headers).
    // google.rpc.Status is tonic-types' type rather than a second copy. Headers and request
    // attributes carry credentials: `src/lib.rs` gives them a redacting `Debug`.
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("envoy_ext_authz_descriptor.bin"))
        .extern_path(".google.rpc", "::tonic_types::pb")
        .skip_debug([
            "envoy.config.core.v3.HeaderValue",
            "envoy.service.auth.v3.AttributeContext.HttpRequest",
        ])
        .compile_protos(
            &[PathBuf::from(
                "proto/envoy/service/auth/v3/external_auth.proto",
            )],
            &[PathBuf::from("proto"), well_known.clone()],
        )?;

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("auth_v1_descriptor.bin"))
        .skip_debug(MESSAGES_WITH_SECRETS.iter().copied())
        .compile_protos(
            &[
                PathBuf::from("proto/auth/v1/auth.proto"),
                PathBuf::from("proto/auth/v1/admin.proto"),
                PathBuf::from("proto/auth/v1/reasons.proto"),
            ],
            &[PathBuf::from("proto"), well_known],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

fn set_protoc(path: PathBuf) {
    // Edition 2024 marks set_var unsafe because of other threads; a build script has none.
    #[allow(unsafe_code)]
    unsafe {
        env::set_var("PROTOC", path)
    };
}
