//! A throwaway certificate authority for `demo --tls` and the mutual-TLS test: a CA made in
//! memory, and certificates it signs for 127.0.0.1/localhost servers and named clients. Nothing
//! here is meant to outlive the process that made it; real deployments bring their own PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA that signs certificates on demand.
pub struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate (PEM) and its private key (PEM).
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Paths of an [`Issued`] written to disk.
#[derive(Clone, Debug)]
pub struct IssuedFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A new self-signed CA called `name`.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            ca_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate: what clients trust, and what a mutual-TLS server checks clients by.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A certificate for a service at 127.0.0.1 / localhost, good both for serving and for
    /// calling other services (mutual TLS).
    pub fn service(&self, name: &str) -> Result<Issued, rcgen::Error> {
        self.issue(
            name,
            vec!["localhost".into(), "127.0.0.1".into()],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A certificate that only identifies a client.
    pub fn client(&self, name: &str) -> Result<Issued, rcgen::Error> {
        self.issue(
            name,
            vec![name.to_owned()],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn issue(
        &self,
        name: &str,
        subject_alt_names: Vec<String>,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<Issued, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(subject_alt_names)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Issued {
    /// Writes `<name>.pem` and `<name>-key.pem` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<IssuedFiles> {
        let files = IssuedFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.cert, &self.cert_pem)?;
        write_private(&files.key, &self.key_pem)?;
        Ok(files)
    }
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}
