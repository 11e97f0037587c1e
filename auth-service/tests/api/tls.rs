//! TLS and mutual TLS on the gRPC listener (AUTH_TLS_CERT, AUTH_TLS_KEY, AUTH_TLS_CLIENT_CA),
//! with a CA and certificates made for each test (rcgen): nothing is read from the repository.
//! TLS sits below gRPC and does not depend on the database, so these run on SQLite only.

use std::{path::Path, time::Duration};

use auth_api::{
    tls::{ClientTls, connect},
    v1::{
        CredentialKind, GetJwksRequest, LoginRequest, RegisterRequest, VerifyRequest,
        auth_service_client::AuthServiceClient, key_service_client::KeyServiceClient,
        login_response::Credential,
    },
};
use auth_service::{app::Application, config::Settings};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Uri};

use crate::helpers::{Backend, PASSWORD, TestDatabase, TestResult, test_settings, unique_email};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a refused client may take to find out.
const REFUSAL_LIMIT: Duration = Duration::from_secs(10);

/// A throwaway CA (also used by `dependency_tls.rs`).
pub(crate) struct Ca {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub(crate) struct Issued {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Result<Self, BoxError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let pem = params.self_signed(&key)?.pem();
        Ok(Self {
            pem,
            issuer: Issuer::new(params, key),
        })
    }

    pub(crate) fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<Issued, BoxError> {
        let key = KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer)?.pem();
        Ok(Issued {
            cert,
            key: key.serialize_pem(),
        })
    }

    fn server(&self) -> Result<Issued, BoxError> {
        self.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self, name: &str) -> Result<Issued, BoxError> {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A client that trusts this CA, presenting `identity` if given.
    fn client_tls(&self, identity: Option<&Issued>) -> ClientTls {
        let tls = ClientTls::new(self.pem.clone());
        match identity {
            Some(issued) => tls.with_identity(issued.cert.clone(), issued.key.clone()),
            None => tls,
        }
    }
}

/// A server under test, stopped when dropped.
struct TlsServer {
    addr: std::net::SocketAddr,
    _database: TestDatabase,
    _stop: oneshot::Sender<()>,
}

impl TlsServer {
    /// Writes the server's certificate and key (and the client CA for mutual TLS) into the
    /// test's data directory and starts the server with them.
    async fn start(ca: &Ca, client_ca: Option<&Ca>) -> Result<Self, BoxError> {
        let database = TestDatabase::create(&Backend::Sqlite).await?;
        let mut settings = test_settings(&database);
        let dir = settings.data_dir.clone();
        let issued = ca.server()?;
        settings.tls_cert = Some(write(&dir, "server.pem", &issued.cert)?);
        settings.tls_key = Some(write(&dir, "server-key.pem", &issued.key)?);
        if let Some(client_ca) = client_ca {
            settings.tls_client_ca = Some(write(&dir, "client-ca.pem", &client_ca.pem)?);
        }
        let app = Application::build(settings).await?;
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            _database: database,
            _stop: stop,
        })
    }

    fn url(&self, scheme: &str) -> Result<Uri, BoxError> {
        Ok(format!("{scheme}://{}", self.addr).parse()?)
    }

    /// Connects with `tls` (over https://) and makes one call that needs no credential.
    async fn call(&self, tls: Option<&ClientTls>) -> Result<Channel, BoxError> {
        let url = self.url(if tls.is_some() { "https" } else { "http" })?;
        let attempt = async {
            let channel = connect(&url, tls).await?;
            KeyServiceClient::new(channel.clone())
                .get_jwks(GetJwksRequest {})
                .await?;
            Ok::<_, BoxError>(channel)
        };
        tokio::time::timeout(REFUSAL_LIMIT, attempt)
            .await
            .map_err(|_| format!("no answer within {REFUSAL_LIMIT:?}"))?
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, contents)?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_serves_tls_clients_and_refuses_plaintext() -> TestResult {
    let ca = Ca::new("test CA")?;
    let server = TlsServer::start(&ca, None).await?;

    // Without a client CA, a client needs no certificate: trusting the CA is enough.
    server.call(Some(&ca.client_tls(None))).await?;

    let plaintext = server.call(None).await;
    assert!(plaintext.is_err(), "a plaintext client was served");

    // A client that does not trust the server's CA refuses the server.
    let stranger = Ca::new("another CA")?;
    let untrusting = server.call(Some(&stranger.client_tls(None))).await;
    assert!(untrusting.is_err(), "the client accepted an unknown CA");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutual_tls_listener_serves_only_clients_with_a_certificate_from_its_client_ca()
-> TestResult {
    let ca = Ca::new("test CA")?;
    let server = TlsServer::start(&ca, Some(&ca)).await?;

    let no_certificate = server.call(Some(&ca.client_tls(None))).await;
    assert!(
        no_certificate.is_err(),
        "a client without a certificate was served"
    );

    let stranger = Ca::new("another CA")?;
    let foreign = stranger.client("intruder")?;
    let foreign_certificate = server.call(Some(&ca.client_tls(Some(&foreign)))).await;
    assert!(
        foreign_certificate.is_err(),
        "a client with a certificate from another CA was served"
    );

    let plaintext = server.call(None).await;
    assert!(plaintext.is_err(), "a plaintext client was served");

    // A proper client certificate: the whole login and Verify path works over it.
    let identity = ca.client("order-service")?;
    let channel = server.call(Some(&ca.client_tls(Some(&identity)))).await?;
    let mut auth = AuthServiceClient::new(channel);
    let email = unique_email("mtls");
    let user_id = auth
        .register(RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
        })
        .await?
        .into_inner()
        .user_id;
    let login = auth
        .login(LoginRequest {
            email,
            password: PASSWORD.into(),
            kind: CredentialKind::Session.into(),
            management: false,
        })
        .await?
        .into_inner();
    let Some(Credential::Session(session)) = login.credential else {
        return Err("no session token".into());
    };
    let principal = auth
        .verify(VerifyRequest {
            token: session.session_token,
            audience: String::new(),
        })
        .await?
        .into_inner()
        .principal
        .ok_or("no principal")?;
    assert_eq!(principal.user_id, user_id);
    Ok(())
}

#[tokio::test]
async fn incomplete_or_unreadable_tls_settings_fail_the_start() -> TestResult {
    let database = TestDatabase::create(&Backend::Sqlite).await?;
    let dir = test_settings(&database).data_dir;
    let ca = Ca::new("test CA")?;
    let issued = ca.server()?;
    let cert = write(&dir, "server.pem", &issued.cert)?;
    let key = write(&dir, "server-key.pem", &issued.key)?;

    let start = |configure: &dyn Fn(&mut Settings)| {
        let mut settings = test_settings(&database);
        configure(&mut settings);
        Application::build(settings)
    };
    let only_cert = start(&|settings| settings.tls_cert = Some(cert.clone())).await;
    assert!(only_cert.is_err(), "started with a certificate but no key");

    let only_client_ca = start(&|settings| settings.tls_client_ca = Some(cert.clone())).await;
    assert!(
        only_client_ca.is_err(),
        "started with a client CA but no TLS"
    );

    let missing = dir.join("missing-key.pem");
    let Err(error) = start(&|settings| {
        settings.tls_cert = Some(cert.clone());
        settings.tls_key = Some(missing.clone());
    })
    .await
    else {
        return Err("started with a missing key file".into());
    };
    assert!(error.to_string().contains("missing-key.pem"), "{error}");

    // The key where the certificate goes; the message names the file, not its contents.
    let Err(error) = start(&|settings| {
        settings.tls_cert = Some(key.clone());
        settings.tls_key = Some(key.clone());
    })
    .await
    else {
        return Err("started with a key as its certificate".into());
    };
    assert!(!error.to_string().contains("PRIVATE KEY-----\n"), "{error}");
    Ok(())
}

/// A service client bound to a SPIFFE ID (a URI SAN) obtains its tokens over mutual TLS with the
/// certificate alone; a certificate of the same CA without the bound identity gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_client_bound_to_a_certificate_identity_needs_no_secret() -> TestResult {
    use auth_api::v1::IssueServiceTokenRequest;
    use auth_service::domain::{
        Timestamp, admin::AdminCore, model::Principal, service_admin::ServiceClientSpec,
    };
    use rcgen::{SanType, string::Ia5String};

    const SPIFFE_ID: &str = "spiffe://example.org/order-service";
    let ca = Ca::new("test CA")?;
    let database = TestDatabase::create(&Backend::Sqlite).await?;
    let mut settings = test_settings(&database);
    let dir = settings.data_dir.clone();
    let issued = ca.server()?;
    settings.tls_cert = Some(write(&dir, "server.pem", &issued.cert)?);
    settings.tls_key = Some(write(&dir, "server-key.pem", &issued.key)?);
    settings.tls_client_ca = Some(write(&dir, "client-ca.pem", &ca.pem)?);
    {
        // The client, made as an administrator would (the admin RPCs are tested in services.rs).
        let components = auth_service::app::Components::open(&settings).await?;
        let admin = AdminCore::new(components.core.clone(), Duration::ZERO);
        let root = Principal {
            user_id: "root".into(),
            email: String::new(),
            roles: vec!["admin".into()],
            session_id: String::new(),
            service: false,
            actors: Vec::new(),
            email_verified: false,
        };
        let spec = ServiceClientSpec {
            name: "order-service".into(),
            audiences: vec!["inventory".into()],
            exchange_audiences: Vec::new(),
            mtls_identity: Some(SPIFFE_ID.into()),
        };
        admin
            .create_service_client(&root, spec, Timestamp::now())
            .await?;
    }
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let url: Uri = format!("https://{addr}").parse()?;

    // A workload certificate whose only SAN is the SPIFFE ID.
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(SPIFFE_ID)?)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let workload = Issued {
        cert: params.signed_by(&key, &ca.issuer)?.pem(),
        key: key.serialize_pem(),
    };
    let request = IssueServiceTokenRequest {
        audience: "inventory".into(),
        ..Default::default()
    };
    let channel = connect(&url, Some(&ca.client_tls(Some(&workload)))).await?;
    let issued = AuthServiceClient::new(channel)
        .issue_service_token(request.clone())
        .await?
        .into_inner();
    let verified =
        AuthServiceClient::new(connect(&url, Some(&ca.client_tls(Some(&workload)))).await?)
            .verify(VerifyRequest {
                token: issued.access_token,
                audience: "inventory".into(),
            })
            .await?
            .into_inner();
    let principal = verified.principal.ok_or("no principal")?;
    assert_eq!(principal.user_id, "order-service");
    assert_eq!(principal.kind(), auth_api::v1::PrincipalKind::Service);

    // Same CA, other identity: no client is bound to it.
    let stranger = ca.client("intruder")?;
    let channel = connect(&url, Some(&ca.client_tls(Some(&stranger)))).await?;
    let refused = AuthServiceClient::new(channel)
        .issue_service_token(request)
        .await;
    crate::helpers::assert_error(
        refused,
        tonic::Code::Unauthenticated,
        "INVALID_CLIENT_CREDENTIALS",
    );
    Ok(())
}
