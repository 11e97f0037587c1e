//! Compiles `proto/demo/v1/demo.proto` into the `demo-services` library: messages, tonic clients
//! and servers, and the encoded descriptor set for the services' reflection endpoint. The same
//! recipe as the root `build.rs`; no message here carries a secret (tokens travel only in the
//! `authorization` metadata), so every message keeps prost's derived `Debug`.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc keeps "install protoc" out of every set-up guide.
    if env::var_os("PROTOC").is_none() {
        set_protoc(protoc_bin_vendored::protoc_bin_path()?);
    }
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("demo_v1_descriptor.bin"))
        .compile_protos(
            &[PathBuf::from("../proto/demo/v1/demo.proto")],
            &[PathBuf::from("../proto"), well_known],
        )?;
    println!("cargo:rerun-if-changed=../proto/demo");
    Ok(())
}

fn set_protoc(path: PathBuf) {
    // Edition 2024 marks set_var unsafe because of other threads; a build script has none.
    #[allow(unsafe_code)]
    unsafe {
        env::set_var("PROTOC", path)
    };
}
