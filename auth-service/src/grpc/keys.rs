//! `auth.v1.KeyService`: the public keys, for services that verify access tokens themselves.

use std::sync::Arc;

use auth_api::v1::{GetJwksRequest, GetJwksResponse, key_service_server::KeyService};
use tonic::{Request, Response, Status};

use crate::domain::{AuthCore, Timestamp};

pub struct KeyApi {
    core: Arc<AuthCore>,
}

impl KeyApi {
    pub fn new(core: Arc<AuthCore>) -> Self {
        Self { core }
    }
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn get_jwks(
        &self,
        _request: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        Ok(Response::new(GetJwksResponse {
            jwks_json: self.core.jwks_json(Timestamp::now()).await,
        }))
    }
}
