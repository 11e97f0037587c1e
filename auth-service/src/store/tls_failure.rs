//! Why a TLS handshake with PostgreSQL or Redis failed, in words an operator can act on. The
//! drivers report rustls's error inside an `io::Error` (sqlx) or behind an `Arc` (redis); this
//! digs it out of either and names the setting to check. No URL, and so no password, is printed.

use std::{error::Error, sync::Arc};

use rustls::{AlertDescription, CertificateError};

/// What went wrong with the server's certificate or the handshake.
#[derive(Debug)]
pub enum TlsFailure {
    /// Signed by no CA the client trusts (the wrong CA file, or none where one is needed).
    UntrustedIssuer,
    /// Valid, but not for the host name connected to.
    WrongName,
    Expired,
    /// The server refused: most often because it wants a client certificate.
    ServerRefused(String),
    Other(String),
}

impl TlsFailure {
    /// The TLS failure somewhere in `error`'s chain, if it is one.
    pub fn find(error: &(dyn Error + 'static)) -> Option<Self> {
        find_rustls(error).map(Self::from_rustls)
    }

    fn from_rustls(error: &rustls::Error) -> Self {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                Self::UntrustedIssuer
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => Self::WrongName,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => Self::Expired,
            rustls::Error::AlertReceived(
                alert @ (AlertDescription::CertificateRequired
                | AlertDescription::HandshakeFailure
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA),
            ) => Self::ServerRefused(format!("{alert:?}")),
            other => Self::Other(other.to_string()),
        }
    }

    /// The message: what failed, and which setting (`trust`: where the CA comes from; `name`:
    /// how to connect by the right name) to look at.
    pub fn describe(&self, host: &str, trust: &str, name: &str) -> String {
        match self {
            Self::UntrustedIssuer => {
                format!("the certificate of {host} is not signed by a trusted CA: check {trust}")
            }
            Self::WrongName => {
                format!("the certificate of {host} is not issued for that name: {name}")
            }
            Self::Expired => format!("the certificate of {host} has expired"),
            Self::ServerRefused(alert) => format!(
                "{host} refused the TLS handshake ({alert}): does it require a client certificate?"
            ),
            Self::Other(error) => format!(
                "the TLS handshake with {host} failed ({error}): is that port speaking TLS?"
            ),
        }
    }
}

fn find_rustls<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    // io::Error::source() skips the error it wraps: look at it directly.
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        && let Some(tls) = find_rustls(inner)
    {
        return Some(tls);
    }
    if let Some(inner) = error.downcast_ref::<Arc<dyn Error + Send + Sync>>()
        && let Some(tls) = find_rustls(inner.as_ref())
    {
        return Some(tls);
    }
    error.source().and_then(find_rustls)
}
