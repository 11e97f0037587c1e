//! The service-to-service scenarios: many distinct service clients (created over `AdminService`
//! by an admin the run logs in as), each with a secret and a live service token, and the calls
//! `service-token` (`IssueServiceToken`, client-credentials grant) and `exchange` (an
//! authenticated `ExchangeToken`: a client's service token as the bearer, a user's access token
//! as the subject, the user's session served from the session cache after its first check).
//! Set-up, never measured.

use std::sync::Arc;

use auth_api::v1::{self as pb, CredentialKind, admin_service_client::AdminServiceClient};
use tonic::{Status, metadata::MetadataValue};

use super::{
    BenchConfig, Clients,
    calls::{Call, pick_index},
};
use crate::RunError;

/// The audience of the bench clients' own tokens, and the one they exchange users' tokens into.
pub const SERVICE_AUDIENCE: &str = "bench-service";
pub const EXCHANGE_AUDIENCE: &str = "payments";

/// Service clients made for the run: id, secret and a live service token each.
pub struct ServiceClients {
    pub ids: Vec<String>,
    secrets: Vec<String>,
    pub tokens: Vec<String>,
}

impl ServiceClients {
    /// Logs in as the admin (`config.admin_email`, a management session) and creates
    /// `config.service_clients` clients named for the run, then obtains a token for each.
    pub async fn create(
        clients: &Clients,
        config: &BenchConfig,
        run_id: &str,
    ) -> Result<Self, RunError> {
        let email = config
            .admin_email
            .clone()
            .ok_or("the service scenarios need --admin-email (an account with the admin role)")?;
        let login = clients
            .auth(0)
            .login(pb::LoginRequest {
                email,
                password: config.admin_password.clone(),
                kind: CredentialKind::Tokens as i32,
                management: true,
            })
            .await?
            .into_inner();
        let Some(pb::login_response::Credential::Tokens(admin)) = login.credential else {
            return Err("the admin login gave no tokens".into());
        };
        let bearer: MetadataValue<_> = format!("Bearer {}", admin.access_token).parse()?;
        let mut created = Self {
            ids: Vec::new(),
            secrets: Vec::new(),
            tokens: Vec::new(),
        };
        let count = config.service_clients.max(1);
        for chunk in (0..count).collect::<Vec<_>>().chunks(8) {
            let mut tasks = tokio::task::JoinSet::new();
            for index in chunk {
                let name = format!("bench-{run_id}-{index}");
                let mut admin = AdminServiceClient::new(clients.channel(*index));
                let mut auth = clients.auth(*index);
                let mut request = tonic::Request::new(pb::CreateServiceClientRequest {
                    name: name.clone(),
                    audiences: vec![SERVICE_AUDIENCE.into()],
                    exchange_audiences: vec![EXCHANGE_AUDIENCE.into()],
                    mtls_identity: String::new(),
                });
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
                tasks.spawn(async move {
                    let secret = admin
                        .create_service_client(request)
                        .await?
                        .into_inner()
                        .client_secret;
                    let token = auth
                        .issue_service_token(pb::IssueServiceTokenRequest {
                            client_id: name.clone(),
                            client_secret: secret.clone(),
                            audience: SERVICE_AUDIENCE.into(),
                        })
                        .await?
                        .into_inner()
                        .access_token;
                    Ok::<_, Status>((name, secret, token))
                });
            }
            while let Some(made) = tasks.join_next().await {
                let (id, secret, token) = made??;
                created.ids.push(id);
                created.secrets.push(secret);
                created.tokens.push(token);
            }
        }
        Ok(created)
    }
}

/// `IssueServiceToken` with the secret of a client picked per call (callers spread over all).
pub(super) fn service_token_call(
    clients: &Clients,
    services: &ServiceClients,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let auth: Vec<_> = (0..clients.connections())
        .map(|index| clients.auth(index))
        .collect();
    let credentials: Arc<Vec<(String, String)>> = Arc::new(
        services
            .ids
            .iter()
            .cloned()
            .zip(services.secrets.iter().cloned())
            .collect(),
    );
    move |caller, iteration| {
        let mut client = auth[caller % auth.len()].clone();
        let (client_id, client_secret) = credentials
            .get(pick_index(credentials.len(), caller, iteration))
            .cloned()
            .unwrap_or_default();
        Box::pin(async move {
            client
                .issue_service_token(pb::IssueServiceTokenRequest {
                    client_id,
                    client_secret,
                    audience: SERVICE_AUDIENCE.into(),
                })
                .await
                .map(|_| ())
        })
    }
}

/// An authenticated `ExchangeToken`: a client's service token as the bearer, a user's access
/// token as the subject, both picked per call from many.
pub(super) fn exchange_call(
    clients: &Clients,
    services: &ServiceClients,
    subjects: Arc<Vec<String>>,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let auth: Vec<_> = (0..clients.connections())
        .map(|index| clients.auth(index))
        .collect();
    let bearers: Arc<Vec<Option<MetadataValue<_>>>> = Arc::new(
        services
            .tokens
            .iter()
            .map(|token| format!("Bearer {token}").parse().ok())
            .collect(),
    );
    move |caller, iteration| {
        let mut client = auth[caller % auth.len()].clone();
        // Different strides, so every service meets every user.
        let bearer = bearers
            .get(pick_index(bearers.len(), caller.wrapping_add(1), iteration))
            .cloned()
            .flatten();
        let subject_token = subjects
            .get(pick_index(subjects.len(), caller, iteration))
            .cloned()
            .unwrap_or_default();
        Box::pin(async move {
            let mut request = tonic::Request::new(pb::ExchangeTokenRequest {
                subject_token,
                audience: EXCHANGE_AUDIENCE.into(),
            });
            let bearer = bearer.ok_or_else(|| Status::internal("no service token"))?;
            request.metadata_mut().insert("authorization", bearer);
            client.exchange_token(request).await.map(|_| ())
        })
    }
}
