//! TLS and mutual TLS for the fleet's gRPC connections (rustls, through tonic), from PEM files.
//!
//! - Servers: [`ServerTls::from_files`] reads a certificate chain, its private key and, for
//!   mutual TLS, the CA that client certificates must be signed by; [`ServerTls::config`] is
//!   what `Server::builder().tls_config(..)` takes.
//! - Clients: [`ClientTls`] holds the CA to trust and, for mutual TLS, the client's own
//!   certificate and key; [`endpoint`] / [`connect`] / [`connect_lazy`] turn a URL into a
//!   channel that uses it.
//!
//! tonic only speaks TLS to `https://` URLs and silently speaks plaintext to `http://` ones, even
//! with a TLS configuration set. [`endpoint`] therefore refuses both mismatches (TLS settings
//! with an `http://` URL, an `https://` URL without them) instead of downgrading quietly.
//!
//! Private keys never reach a log line: [`ServerTls`] and [`ClientTls`] print `<redacted>` for
//! them.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig, Uri,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} at {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} at {} is not PEM with a {expected} in it", path.display())]
    NotPem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{0}")]
    Incomplete(&'static str),
    #[error("{url}: {problem}")]
    Scheme { url: Uri, problem: &'static str },
    #[error("invalid TLS settings for {url}: {source}")]
    Endpoint {
        url: Uri,
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: Uri,
        source: tonic::transport::Error,
    },
}

/// PEM text of a private key: cloneable, never printed.
#[derive(Clone)]
struct KeyPem(Vec<u8>);

impl fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// PEM text of certificates: public, but long; printed as its size.
#[derive(Clone)]
struct CertPem(Vec<u8>);

impl fmt::Debug for CertPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes of PEM>", self.0.len())
    }
}

/// A certificate chain and its private key, both PEM.
#[derive(Clone, Debug)]
struct PemIdentity {
    cert: CertPem,
    key: KeyPem,
}

impl PemIdentity {
    fn read(cert: &Path, key: &Path, what: &'static str) -> Result<Self, TlsError> {
        Ok(Self {
            cert: CertPem(read_pem(cert, what, "CERTIFICATE")?),
            key: KeyPem(read_pem(key, "private key", "PRIVATE KEY")?),
        })
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert.0, &self.key.0)
    }
}

/// A server's TLS settings: its identity and, for mutual TLS, the CA of its clients.
#[derive(Clone, Debug)]
pub struct ServerTls {
    identity: PemIdentity,
    client_ca: Option<CertPem>,
}

impl ServerTls {
    /// From PEM text. With `client_ca_pem`, every client must present a certificate signed by
    /// that CA (mutual TLS); a client without one fails the handshake.
    pub fn new(
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
        client_ca_pem: Option<Vec<u8>>,
    ) -> Self {
        Self {
            identity: PemIdentity {
                cert: CertPem(cert_pem.into()),
                key: KeyPem(key_pem.into()),
            },
            client_ca: client_ca_pem.map(CertPem),
        }
    }

    /// From the three optional settings of a server: `Ok(None)` (plaintext) when none is given;
    /// certificate and key come together; a client CA needs them.
    pub fn from_files(
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Result<Option<Self>, TlsError> {
        let (cert, key) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) if client_ca.is_none() => return Ok(None),
            (None, None) => {
                return Err(TlsError::Incomplete(
                    "a client CA (mutual TLS) needs the server's TLS certificate and key too",
                ));
            }
            _ => {
                return Err(TlsError::Incomplete(
                    "the TLS certificate and key are set together, or neither",
                ));
            }
        };
        Ok(Some(Self {
            identity: PemIdentity::read(cert, key, "TLS certificate")?,
            client_ca: client_ca
                .map(|path| read_pem(path, "client CA certificate", "CERTIFICATE").map(CertPem))
                .transpose()?,
        }))
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.client_ca.is_some()
    }

    /// The configuration for `Server::builder().tls_config(..)`.
    pub fn config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new().identity(self.identity.identity());
        match &self.client_ca {
            // client_auth_optional stays false: no certificate, no connection.
            Some(ca) => config.client_ca_root(Certificate::from_pem(&ca.0)),
            None => config,
        }
    }
}

/// A client's TLS settings: the CA it trusts and, for mutual TLS, its own certificate.
#[derive(Clone, Debug)]
pub struct ClientTls {
    ca: CertPem,
    identity: Option<PemIdentity>,
    domain: Option<String>,
}

impl ClientTls {
    /// Trusts the servers whose certificate `ca_pem` signed (and no other CA).
    pub fn new(ca_pem: impl Into<Vec<u8>>) -> Self {
        Self {
            ca: CertPem(ca_pem.into()),
            identity: None,
            domain: None,
        }
    }

    /// Presents this certificate (PEM chain) and key to servers that ask for one (mutual TLS).
    pub fn with_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some(PemIdentity {
            cert: CertPem(cert_pem.into()),
            key: KeyPem(key_pem.into()),
        });
        self
    }

    /// Checks the server's certificate against this name instead of the URL's host.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// From the optional settings of a client: `Ok(None)` (plaintext) when none is given; a
    /// client certificate and key come together and need the CA.
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<Self>, TlsError> {
        if ca.is_none() && (cert.is_some() || key.is_some()) {
            return Err(TlsError::Incomplete(
                "a client certificate needs the CA certificate of the server too",
            ));
        }
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(PemIdentity::read(cert, key, "client certificate")?),
            (None, None) => None,
            _ => {
                return Err(TlsError::Incomplete(
                    "the client certificate and key are set together, or neither",
                ));
            }
        };
        match ca {
            Some(ca) => Ok(Some(Self {
                ca: CertPem(read_pem(ca, "CA certificate", "CERTIFICATE")?),
                identity,
                domain: None,
            })),
            None => Ok(None),
        }
    }

    /// Whether this client presents a certificate.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// The configuration for `Endpoint::tls_config(..)`.
    pub fn config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca.0));
        if let Some(identity) = &self.identity {
            config = config.identity(identity.identity());
        }
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        config
    }
}

/// An endpoint for `url`: TLS with `tls` for an `https://` URL, plaintext for `http://`.
/// Any other combination is an error rather than a silent downgrade.
pub fn endpoint(url: &Uri, tls: Option<&ClientTls>) -> Result<Endpoint, TlsError> {
    let scheme_error = |problem| TlsError::Scheme {
        url: url.clone(),
        problem,
    };
    let endpoint = Endpoint::from(url.clone()).tcp_nodelay(true);
    match (url.scheme_str(), tls) {
        (Some("https"), Some(tls)) => {
            endpoint
                .tls_config(tls.config())
                .map_err(|source| TlsError::Endpoint {
                    url: url.clone(),
                    source,
                })
        }
        (Some("http"), None) => Ok(endpoint),
        (Some("https"), None) => Err(scheme_error(
            "an https:// URL needs TLS settings (the CA certificate to trust)",
        )),
        (Some("http"), Some(_)) => Err(scheme_error(
            "TLS settings are given but the URL is http://; use https://",
        )),
        _ => Err(scheme_error("the URL must start with http:// or https://")),
    }
}

/// Connects now (TCP and, for `https://`, the TLS handshake).
pub async fn connect(url: &Uri, tls: Option<&ClientTls>) -> Result<Channel, TlsError> {
    endpoint(url, tls)?
        .connect()
        .await
        .map_err(|source| TlsError::Connect {
            url: url.clone(),
            source,
        })
}

/// A channel that connects on first use, so a service can start before its dependencies.
pub fn connect_lazy(url: &Uri, tls: Option<&ClientTls>) -> Result<Channel, TlsError> {
    Ok(endpoint(url, tls)?.connect_lazy())
}

fn read_pem(path: &Path, what: &'static str, expected: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    // A cheap check for the usual mistakes (a DER file, the key where the certificate goes);
    // rustls parses the content when the server or channel is built.
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text.lines().any(|line| {
        line.starts_with("-----BEGIN ") && line.trim_end().ends_with(&format!("{expected}-----"))
    });
    if !has_block {
        return Err(TlsError::NotPem {
            what,
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nsecretkeymaterial\n-----END PRIVATE KEY-----\n";

    #[test]
    fn no_settings_is_plaintext_and_half_settings_are_refused() {
        assert!(ServerTls::from_files(None, None, None).unwrap().is_none());
        assert!(ClientTls::from_files(None, None, None).unwrap().is_none());
        let path = Path::new("/nonexistent.pem");
        assert!(matches!(
            ServerTls::from_files(Some(path), None, None),
            Err(TlsError::Incomplete(_))
        ));
        assert!(matches!(
            ServerTls::from_files(None, None, Some(path)),
            Err(TlsError::Incomplete(_))
        ));
        assert!(matches!(
            ClientTls::from_files(None, Some(path), Some(path)),
            Err(TlsError::Incomplete(_))
        ));
    }

    #[test]
    fn unreadable_and_non_pem_files_are_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("auth-api-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = write(&dir, "cert.pem", CERT);
        let key = write(&dir, "key.pem", KEY);
        let missing = dir.join("missing.pem");
        let error = ServerTls::from_files(Some(&cert), Some(&missing), None).unwrap_err();
        assert!(error.to_string().contains("missing.pem"), "{error}");
        // The key where the certificate goes.
        let error = ServerTls::from_files(Some(&key), Some(&key), None).unwrap_err();
        assert!(matches!(error, TlsError::NotPem { .. }), "{error}");
        let tls = ServerTls::from_files(Some(&cert), Some(&key), Some(&cert))
            .unwrap()
            .unwrap();
        assert!(tls.requires_client_certificate());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn private_keys_are_not_printed() {
        let server = ServerTls::new(CERT, KEY, None);
        let client = ClientTls::new(CERT).with_identity(CERT, KEY);
        for printed in [format!("{server:?}"), format!("{client:?}")] {
            assert!(!printed.contains("secretkeymaterial"), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
    }

    #[test]
    fn the_url_scheme_must_match_the_tls_settings() {
        let tls = ClientTls::new(CERT);
        let http: Uri = "http://127.0.0.1:1".parse().unwrap();
        let https: Uri = "https://127.0.0.1:1".parse().unwrap();
        assert!(endpoint(&http, None).is_ok());
        assert!(matches!(
            endpoint(&http, Some(&tls)),
            Err(TlsError::Scheme { .. })
        ));
        assert!(matches!(
            endpoint(&https, None),
            Err(TlsError::Scheme { .. })
        ));
    }
}
