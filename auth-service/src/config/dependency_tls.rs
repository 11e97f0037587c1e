//! TLS to Redis: the CA that signs the server's certificate and, for servers that ask for one
//! (`tls-auth-clients yes`), the client certificate. PostgreSQL's TLS settings travel in
//! `DATABASE_URL` itself (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), as libpq's do.

use std::path::{Path, PathBuf};

use clap::Args;

use super::Settings;
use crate::store::redis_tls::RedisTls;

#[derive(Debug, Clone, Default, Args)]
pub struct RedisTlsFiles {
    /// `rediss://` only: the CA certificate (PEM) the Redis server's certificate must be signed
    /// by, instead of the system's trusted roots.
    #[arg(long, env = "AUTH_REDIS_TLS_CA", global = true)]
    pub redis_tls_ca: Option<PathBuf>,

    /// `rediss://` only: a client certificate (PEM) for a Redis that asks for one. Set with
    /// AUTH_REDIS_TLS_KEY.
    #[arg(long, env = "AUTH_REDIS_TLS_CERT", global = true)]
    pub redis_tls_cert: Option<PathBuf>,

    /// `rediss://` only: the private key of AUTH_REDIS_TLS_CERT (PEM). Never printed.
    #[arg(long, env = "AUTH_REDIS_TLS_KEY", global = true)]
    pub redis_tls_key: Option<PathBuf>,
}

impl Settings {
    /// The TLS material for `REDIS_URL`, read now so a bad path stops the start: `None` for a
    /// `redis://` URL (plaintext), or a `rediss://` one that trusts the system's roots.
    pub fn redis_tls(&self) -> Result<Option<RedisTls>, String> {
        let files = &self.redis_tls_files;
        let any_set = files.redis_tls_ca.is_some()
            || files.redis_tls_cert.is_some()
            || files.redis_tls_key.is_some();
        let tls_url = self
            .redis_url
            .as_ref()
            .is_some_and(|url| url.expose().starts_with("rediss://"));
        if any_set && !tls_url {
            return Err(
                "AUTH_REDIS_TLS_CA, AUTH_REDIS_TLS_CERT and AUTH_REDIS_TLS_KEY need a rediss:// \
                 REDIS_URL (redis:// is plaintext)"
                    .into(),
            );
        }
        if !tls_url {
            return Ok(None);
        }
        let client = match (&files.redis_tls_cert, &files.redis_tls_key) {
            (Some(cert), Some(key)) => Some((
                read("AUTH_REDIS_TLS_CERT", cert)?,
                read("AUTH_REDIS_TLS_KEY", key)?,
            )),
            (None, None) => None,
            _ => {
                return Err(
                    "AUTH_REDIS_TLS_CERT and AUTH_REDIS_TLS_KEY are set together, or neither"
                        .into(),
                );
            }
        };
        let ca = match &files.redis_tls_ca {
            Some(path) => Some(read("AUTH_REDIS_TLS_CA", path)?),
            None => None,
        };
        Ok(Some(RedisTls::new(ca, client)))
    }
}

fn read(variable: &str, path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path)
        .map_err(|error| format!("cannot read {variable} {}: {error}", path.display()))?;
    if !pem.windows(11).any(|window| window == b"-----BEGIN ") {
        return Err(format!("{variable} {} is not PEM", path.display()));
    }
    Ok(pem)
}
