//! What the operator of the in-process stack sets up before order-service starts, as an
//! administrator would with `authctl`: an admin account (`auth-service user create`), then, over
//! `AdminService`, the service client `order-service` (its own audience "orders", exchanges into
//! "payments"). order-service gets the client secret; the walkthrough keeps the operator's
//! credentials to act as order-service (a timed exchange) and to disable it.

use auth_api::{
    tls::ClientTls,
    v1::{
        CreateServiceClientRequest, CredentialKind, LoginRequest,
        admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
        login_response::Credential,
    },
};
use auth_service::{app::Components, config::Settings, domain::Timestamp};
use tonic::{Status, transport::Uri};

use crate::{
    ORDER_AUDIENCE, ORDER_CLIENT_ID, PAYMENT_AUDIENCE, config::ClientSecret, server::channel,
    with_bearer,
};

/// The stack operator's credentials. `Debug` shows no secret.
#[derive(Clone)]
pub struct Operator {
    /// A management session's access token of an administrator; without it the walkthrough
    /// does not disable order-service (which cannot be undone).
    pub admin_token: Option<ClientSecret>,
    pub order_client_id: String,
    pub order_client_secret: ClientSecret,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("order_client_id", &self.order_client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot create the demo admin: {0}")]
    Admin(String),
    #[error("the auth service refused a set-up call: {0}")]
    Refused(#[from] Status),
    #[error("cannot reach the auth service: {0}")]
    Connect(#[from] crate::server::StartError),
}

/// Creates the admin and the `order-service` client on the auth service at `auth_url` (whose
/// database `settings` name).
pub async fn provision(
    settings: &Settings,
    auth_url: &Uri,
    tls: Option<&ClientTls>,
) -> Result<Operator, ProvisionError> {
    let admin_error = |error: &dyn std::fmt::Display| ProvisionError::Admin(error.to_string());
    let suffix = auth_service::domain::opaque_token::new_id().map_err(|e| admin_error(&e))?;
    let email = format!("demo-admin-{}@example.com", suffix.to_lowercase());
    let password = format!("demo-{suffix}-admin");
    let components = Components::open(settings)
        .await
        .map_err(|e| admin_error(&e))?;
    components
        .core
        .create_user(
            &email,
            password.clone(),
            &["admin".to_owned()],
            Timestamp::now(),
        )
        .await
        .map_err(|e| admin_error(&e))?;
    drop(components);

    let auth = channel(auth_url, tls)?;
    let login = AuthServiceClient::new(auth.clone())
        .login(LoginRequest {
            email,
            password,
            kind: CredentialKind::Tokens.into(),
            management: true,
        })
        .await?
        .into_inner();
    let Some(Credential::Tokens(tokens)) = login.credential else {
        return Err(ProvisionError::Admin(
            "the admin login gave no tokens".into(),
        ));
    };
    let created = AdminServiceClient::new(auth)
        .create_service_client(with_bearer(
            &tokens.access_token,
            CreateServiceClientRequest {
                name: ORDER_CLIENT_ID.into(),
                audiences: vec![ORDER_AUDIENCE.into()],
                exchange_audiences: vec![PAYMENT_AUDIENCE.into()],
                mtls_identity: String::new(),
            },
        )?)
        .await?
        .into_inner();
    Ok(Operator {
        admin_token: Some(ClientSecret::new(tokens.access_token)),
        order_client_id: ORDER_CLIENT_ID.into(),
        order_client_secret: ClientSecret::new(created.client_secret),
    })
}
