//! Verification by asking the auth service: one `Verify` call per request. Accepts session
//! tokens as well as access tokens, and sees revocations the instant they are made.

use tonic::{Code, transport::Channel};

use crate::{
    layer::{Verifier, VerifyError},
    v1::{Principal, VerifyRequest, auth_service_client::AuthServiceClient},
};

#[derive(Clone)]
pub struct RemoteVerifier {
    client: AuthServiceClient<Channel>,
    audience: String,
}

impl RemoteVerifier {
    /// `audience`: the audience access tokens must carry; empty for the auth service's own.
    pub fn new(channel: Channel, audience: impl Into<String>) -> Self {
        Self {
            client: AuthServiceClient::new(channel),
            audience: audience.into(),
        }
    }
}

impl Verifier for RemoteVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, VerifyError> {
        let request = VerifyRequest {
            token: token.to_owned(),
            audience: self.audience.clone(),
        };
        #[cfg(feature = "telemetry")]
        let request = crate::telemetry::traced(request);
        match self.client.clone().verify(request).await {
            Ok(response) => response.into_inner().principal.ok_or(VerifyError::Invalid),
            // The auth service cannot be reached: fail closed, as retryable. A connection the
            // auth service closes during the TLS handshake (say, it refuses this service's
            // client certificate) surfaces as CANCELLED.
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
                ) =>
            {
                Err(VerifyError::Unavailable)
            }
            Err(status) => Err(VerifyError::Remote(status)),
        }
    }
}
