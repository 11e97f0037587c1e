//! order-service's own identity at the auth service: a service client's id and secret, traded for
//! short-lived service tokens (`IssueServiceToken`, the client-credentials grant), each reused for
//! the first half of its life. The token is the bearer of every `ExchangeToken` call, so the token
//! order-service obtains for a user names it as the actor (`act`), which payment-service requires.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use auth_api::v1::{IssueServiceTokenRequest, auth_service_client::AuthServiceClient};
use tonic::{Status, transport::Channel};

use crate::config::ClientSecret;

pub struct ServiceAccount {
    auth: AuthServiceClient<Channel>,
    client_id: String,
    secret: ClientSecret,
    audience: String,
    held: Mutex<Option<Held>>,
}

struct Held {
    token: String,
    renew_at: Instant,
}

impl ServiceAccount {
    pub fn new(
        auth: Channel,
        client_id: impl Into<String>,
        secret: ClientSecret,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            auth: AuthServiceClient::new(auth),
            client_id: client_id.into(),
            secret,
            audience: audience.into(),
            held: Mutex::new(None),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The service token to present: the one held while in the first half of its life, else
    /// (or with `renew`: the held one was refused) a new one.
    pub async fn token(&self, renew: bool) -> Result<String, Status> {
        if !renew {
            let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = held.as_ref().filter(|h| Instant::now() < h.renew_at) {
                return Ok(held.token.clone());
            }
        }
        let issued = self
            .auth
            .clone()
            .issue_service_token(auth_api::telemetry::traced(IssueServiceTokenRequest {
                client_id: self.client_id.clone(),
                client_secret: self.secret.expose().to_owned(),
                audience: self.audience.clone(),
            }))
            .await?
            .into_inner();
        let lifetime = issued
            .expires_at
            .and_then(|at| SystemTime::try_from(at).ok())
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::ZERO);
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = Some(Held {
            token: issued.access_token.clone(),
            renew_at: Instant::now() + lifetime / 2,
        });
        Ok(issued.access_token)
    }
}
