//! The identities of a mutual-TLS caller: the subject (RFC 4514 text, e.g. `CN=order-service`)
//! and every URI SAN (e.g. a SPIFFE ID `spiffe://example.org/order-service`) of the client
//! certificate the TLS handshake verified against `AUTH_TLS_CLIENT_CA` (`auth_api::tls`). A
//! service client bound to one of them authenticates with the certificate alone. Without mutual
//! TLS there are none.

use tonic::Request;
use x509_parser::{certificate::X509Certificate, extensions::GeneralName, prelude::FromDer};

/// The leaf certificate's subject and URI SANs; empty when the call came without one.
pub fn peer_identities<T>(request: &Request<T>) -> Vec<String> {
    let Some(certificates) = request.peer_certs() else {
        return Vec::new();
    };
    let Some(leaf) = certificates.first() else {
        return Vec::new();
    };
    let Ok((_, certificate)) = X509Certificate::from_der(leaf.as_ref()) else {
        return Vec::new();
    };
    let mut identities = vec![certificate.subject().to_string()];
    if let Ok(Some(names)) = certificate.subject_alternative_name() {
        for name in &names.value.general_names {
            if let GeneralName::URI(uri) = name {
                identities.push((*uri).to_owned());
            }
        }
    }
    identities.retain(|identity| !identity.is_empty());
    identities
}
