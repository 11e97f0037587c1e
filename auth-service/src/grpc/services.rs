//! The service-account RPCs (`AdminService`'s service clients, `AuthService.IssueServiceToken`):
//! thin conversions between the protobuf messages and `domain/service_admin.rs`,
//! `domain/services.rs`.

use std::{net::IpAddr, time::Duration};

use auth_api::v1 as pb;
use tonic::{Request, Status};

use super::{convert, peer_identity::peer_identities, to_status};
use crate::domain::{
    AuthCore, AuthError, Timestamp,
    admin::AdminCore,
    model::Principal,
    service_admin::{IssuedSecret, ServiceClientSpec, ServiceClientView},
    services::ServiceCredential,
};

pub fn service_client(view: ServiceClientView) -> pb::ServiceClient {
    pb::ServiceClient {
        client_id: view.id,
        audiences: view.audiences,
        exchange_audiences: view.exchange_audiences,
        mtls_identity: view.mtls_identity.unwrap_or_default(),
        created_at: convert::timestamp(view.created_at),
        disabled: view.disabled_at.is_some(),
        disabled_at: view.disabled_at.and_then(convert::timestamp),
        previous_secret_valid_until: view
            .previous_secret_valid_until
            .and_then(convert::timestamp),
    }
}

fn issued(secret: IssuedSecret) -> (Option<pb::ServiceClient>, String) {
    (Some(service_client(secret.client)), secret.secret)
}

pub async fn create(
    admin: &AdminCore,
    caller: &Principal,
    request: pb::CreateServiceClientRequest,
    now: Timestamp,
) -> Result<pb::CreateServiceClientResponse, Status> {
    let spec = ServiceClientSpec {
        name: request.name,
        audiences: request.audiences,
        exchange_audiences: request.exchange_audiences,
        mtls_identity: Some(request.mtls_identity).filter(|identity| !identity.is_empty()),
    };
    let secret = admin
        .create_service_client(caller, spec, now)
        .await
        .map_err(to_status)?;
    let (client, client_secret) = issued(secret);
    Ok(pb::CreateServiceClientResponse {
        client,
        client_secret,
    })
}

pub async fn rotate(
    admin: &AdminCore,
    caller: &Principal,
    request: pb::RotateServiceClientSecretRequest,
    now: Timestamp,
) -> Result<pb::RotateServiceClientSecretResponse, Status> {
    let overlap = match request.overlap {
        None => Duration::ZERO,
        Some(overlap) => Duration::try_from(overlap).map_err(|_| {
            to_status(AuthError::InvalidArgument(
                "overlap must be a non-negative duration",
            ))
        })?,
    };
    let secret = admin
        .rotate_service_secret(caller, &request.client_id, overlap, now)
        .await
        .map_err(to_status)?;
    let (client, client_secret) = issued(secret);
    Ok(pb::RotateServiceClientSecretResponse {
        client,
        client_secret,
    })
}

/// `IssueServiceToken`: the secret in the request, or else a bound client certificate.
pub async fn issue_token(
    core: &AuthCore,
    request: Request<pb::IssueServiceTokenRequest>,
    client: Option<IpAddr>,
) -> Result<pb::IssueServiceTokenResponse, Status> {
    let identities = peer_identities(&request);
    let request = request.into_inner();
    let credential = if request.client_id.is_empty() && request.client_secret.is_empty() {
        ServiceCredential::Certificate {
            identities: &identities,
        }
    } else {
        ServiceCredential::Secret {
            client_id: &request.client_id,
            secret: &request.client_secret,
        }
    };
    let (access_token, expires_at) = core
        .issue_service_token(credential, &request.audience, client, Timestamp::now())
        .await
        .map_err(to_status)?;
    Ok(pb::IssueServiceTokenResponse {
        access_token,
        expires_at: convert::timestamp(expires_at),
    })
}

/// `ExchangeToken`: the calling service is the call's bearer (a service token) or, without one,
/// its client certificate; with neither, the deprecated unauthenticated exchange.
pub async fn exchange(
    core: &AuthCore,
    request: Request<pb::ExchangeTokenRequest>,
) -> Result<(String, Option<prost_types::Timestamp>), Status> {
    let identities = peer_identities(&request);
    let bearer = auth_api::bearer_token(request.metadata().as_ref()).map(str::to_owned);
    let request = request.into_inner();
    let caller = match (&bearer, identities.is_empty()) {
        (Some(token), _) => Some(ServiceCredential::Token { token }),
        (None, false) => Some(ServiceCredential::Certificate {
            identities: &identities,
        }),
        (None, true) => None,
    };
    let (token, expires_at) = core
        .exchange_token(
            &request.subject_token,
            &request.audience,
            caller,
            Timestamp::now(),
        )
        .await
        .map_err(to_status)?;
    Ok((token, convert::timestamp(expires_at)))
}
