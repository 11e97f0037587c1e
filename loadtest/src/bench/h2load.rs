//! `loadgen h2load-bodies`: the fixed request bodies (and expected answer sizes) for h2load, which
//! can only replay one body per run and counts gRPC errors as successes. Apart from the scenarios
//! because it measures nothing: it mints one user's tokens and writes files.

use auth_api::v1 as pb;

use super::{BenchConfig, Clients, Credentials};
use crate::RunError;

/// For h2load, which sends one fixed body: a gRPC-framed `VerifyRequest` for one access token and
/// one session token (`verify-access.bin`, `verify-session.bin`), and the framed size of the
/// successful answer to each (`*.expect`), so the caller can tell OK answers from gRPC errors
/// (those are HTTP 200 too, but carry no message).
pub async fn write_h2load_bodies(
    config: &BenchConfig,
    dir: &std::path::Path,
) -> Result<(), RunError> {
    use prost::Message as _;
    let clients = Clients::connect(&config.target, 1)?;
    let run_id = format!(
        "h2load-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let one = BenchConfig::minimal(config.target.clone(), config.password.clone());
    let credentials = Credentials::mint(&clients, &one, &run_id).await?;
    std::fs::create_dir_all(dir)?;
    for (name, token) in [
        ("verify-access", credentials.access_tokens.first()),
        ("verify-session", credentials.session_tokens.first()),
    ] {
        let request = pb::VerifyRequest {
            token: token.cloned().ok_or("no token minted")?,
            audience: String::new(),
        };
        let answer = clients.auth(0).verify(request.clone()).await?.into_inner();
        std::fs::write(
            dir.join(format!("{name}.bin")),
            grpc_frame(&request.encode_to_vec()),
        )?;
        std::fs::write(
            dir.join(format!("{name}.expect")),
            format!("{}\n", 5 + answer.encoded_len()),
        )?;
    }
    Ok(())
}

/// The gRPC length-prefixed message: no compression flag, 4-byte big-endian length, bytes.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(message);
    frame
}
