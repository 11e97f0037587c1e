//! Administration of service clients (`AdminService.CreateServiceClient` and friends, `authctl
//! service`): create one (its secret shown once), list them, disable one (every token it holds
//! refused at once, through the Revoker), rotate its secret with an overlap. `services.rs` says
//! how clients, secrets and sessions fit together.

use std::time::Duration;

use super::{
    AuthError, Timestamp,
    admin::AdminCore,
    model::{Principal, SessionKind},
    opaque_token::{OpaqueToken, is_identifier},
    ports::{
        NewSession, RevokeReason, ServiceClientRecord, ServiceRotation, StoreError, UserRecord,
    },
    services::GENERATION_LIFETIME,
    time::duration_millis,
};

/// The longest overlap a rotation may keep the replaced secret valid for.
pub const MAX_SECRET_OVERLAP: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a new client may do.
#[derive(Clone, Debug, Default)]
pub struct ServiceClientSpec {
    /// Its id: lower-case letters, digits and `-`, starting with a letter, at most 63.
    pub name: String,
    /// Audiences its own service tokens may be issued for.
    pub audiences: Vec<String>,
    /// Audiences it may exchange users' credentials into (`ExchangeToken`).
    pub exchange_audiences: Vec<String>,
    /// A bound mutual-TLS identity (certificate subject or URI SAN).
    pub mtls_identity: Option<String>,
}

/// A client as an administrator sees it (never a secret or its hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceClientView {
    pub id: String,
    pub audiences: Vec<String>,
    pub exchange_audiences: Vec<String>,
    pub mtls_identity: Option<String>,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    /// Until when the secret a rotation replaced is still accepted.
    pub previous_secret_valid_until: Option<Timestamp>,
}

impl From<ServiceClientRecord> for ServiceClientView {
    fn from(client: ServiceClientRecord) -> Self {
        Self {
            audiences: words(&client.audiences),
            exchange_audiences: words(&client.exchange_audiences),
            id: client.id,
            mtls_identity: client.mtls_identity,
            created_at: client.created_at,
            disabled_at: client.disabled_at,
            previous_secret_valid_until: client.previous_valid_until,
        }
    }
}

/// A secret, shown once.
pub struct IssuedSecret {
    pub client: ServiceClientView,
    pub secret: String,
}

impl std::fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

pub fn words(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_owned).collect()
}

fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl AdminCore {
    fn audiences(&self, audiences: &[String]) -> Result<String, AuthError> {
        let management = &self.core().policy().management_audience;
        let mut unique: Vec<&str> = Vec::new();
        for audience in audiences {
            if audience.is_empty()
                || audience
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(AuthError::InvalidArgument("an audience must be one word"));
            }
            if audience == management {
                return Err(AuthError::AudienceNotAllowed);
            }
            if !unique.contains(&audience.as_str()) {
                unique.push(audience);
            }
        }
        Ok(unique.join(" "))
    }

    fn generation(client_id: &str, now: Timestamp) -> Result<NewSession, AuthError> {
        Ok(NewSession {
            id: super::opaque_token::new_id()?,
            user_id: client_id.to_owned(),
            kind: SessionKind::Service,
            session_token_hash: None,
            refresh_token_hash: None,
            refresh_expires_at: None,
            created_at: now,
            idle_timeout_ms: duration_millis(GENERATION_LIFETIME),
            expires_at: now.plus(GENERATION_LIFETIME),
            user_agent: String::new(),
            peer_address: String::new(),
            management: false,
        })
    }

    async fn service_client(&self, client_id: &str) -> Result<ServiceClientRecord, AuthError> {
        if !is_identifier(client_id) {
            return Err(AuthError::ServiceClientNotFound);
        }
        self.core()
            .store
            .find_service_client(client_id)
            .await?
            .ok_or(AuthError::ServiceClientNotFound)
    }

    /// Creates a client and its first secret (returned once, never stored).
    pub async fn create_service_client(
        &self,
        caller: &Principal,
        spec: ServiceClientSpec,
        now: Timestamp,
    ) -> Result<IssuedSecret, AuthError> {
        Self::require_admin(caller)?;
        if !valid_name(&spec.name) {
            return Err(AuthError::InvalidArgument(
                "a client name is 1 to 63 lower-case letters, digits or '-', starting with a letter",
            ));
        }
        let mtls_identity = match spec.mtls_identity {
            Some(identity) if identity.chars().any(char::is_control) => {
                return Err(AuthError::InvalidArgument(
                    "mtls_identity must not contain control characters",
                ));
            }
            Some(identity) if identity.trim().is_empty() => None,
            identity => identity,
        };
        let secret = OpaqueToken::generate()?;
        let generation = Self::generation(&spec.name, now)?;
        let client = ServiceClientRecord {
            id: spec.name.clone(),
            audiences: self.audiences(&spec.audiences)?,
            exchange_audiences: self.audiences(&spec.exchange_audiences)?,
            mtls_identity,
            created_at: now,
            disabled_at: None,
            secret_hash: secret.hash.0,
            generation: generation.id.clone(),
            previous_secret_hash: None,
            previous_generation: None,
            previous_valid_until: None,
            rotations: 0,
        };
        // The principal: no password (no login can match an empty hash, and "service:<name>" is
        // no address, so no login even looks it up).
        let principal = UserRecord {
            id: spec.name.clone(),
            email: String::new(),
            email_key: format!("service:{}", spec.name),
            password_hash: String::new(),
            roles: String::new(),
            created_at: now,
            suspended_at: None,
        };
        match self
            .core()
            .store
            .insert_service_client(&principal, &client, &generation)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(AuthError::ServiceClientExists),
            Err(error) => return Err(error.into()),
        }
        tracing::info!(client_id = %client.id, admin = %caller.user_id, "service client created");
        Ok(IssuedSecret {
            client: client.into(),
            secret: secret.text,
        })
    }

    pub async fn list_service_clients(
        &self,
        caller: &Principal,
    ) -> Result<Vec<ServiceClientView>, AuthError> {
        Self::require_admin(caller)?;
        let clients = self.core().store.list_service_clients().await?;
        Ok(clients.into_iter().map(ServiceClientView::from).collect())
    }

    /// Disables a client: marks it, then ends every generation (the Revoker's suspension: the
    /// same order and the same announcement as for a user). Returns how many were live.
    pub async fn disable_service_client(
        &self,
        caller: &Principal,
        client_id: &str,
        now: Timestamp,
    ) -> Result<u64, AuthError> {
        Self::require_admin(caller)?;
        let client = self.service_client(client_id).await?;
        let ended = self
            .core()
            .revoker
            .suspend(&client.id, now)
            .await?
            .ok_or(AuthError::ServiceClientNotFound)?;
        tracing::info!(client_id = %client.id, admin = %caller.user_id, ended, "service client disabled");
        Ok(ended)
    }

    /// Replaces the client's secret. The replaced one stays valid for `overlap` (its tokens end
    /// with it); with none, it and its tokens are refused at once. A replaced secret still in
    /// its overlap from an earlier rotation ends now: at most two secrets are ever valid.
    pub async fn rotate_service_secret(
        &self,
        caller: &Principal,
        client_id: &str,
        overlap: Duration,
        now: Timestamp,
    ) -> Result<IssuedSecret, AuthError> {
        Self::require_admin(caller)?;
        if overlap > MAX_SECRET_OVERLAP {
            return Err(AuthError::InvalidArgument("overlap must be at most 7 days"));
        }
        let client = self.service_client(client_id).await?;
        let revoker = &self.core().revoker;
        if let Some(previous) = &client.previous_generation {
            revoker
                .end_session(previous, RevokeReason::SecretRotated, now)
                .await?;
        }
        let secret = OpaqueToken::generate()?;
        let generation = Self::generation(&client.id, now)?;
        let valid_until = now.plus(overlap);
        let rotation = ServiceRotation {
            client_id: &client.id,
            expected_rotations: client.rotations,
            secret_hash: secret.hash.0,
            generation: &generation,
            previous_generation: &client.generation,
            previous_secret_hash: &client.secret_hash,
            previous_valid_until: valid_until,
        };
        if !self.core().store.rotate_service_secret(&rotation).await? {
            return Err(AuthError::Contended);
        }
        if overlap.is_zero() {
            revoker
                .end_session(&client.generation, RevokeReason::SecretRotated, now)
                .await?;
        }
        tracing::info!(client_id = %client.id, admin = %caller.user_id, ?overlap, "service client secret rotated");
        let client = self.service_client(client_id).await?;
        Ok(IssuedSecret {
            client: client.into(),
            secret: secret.text,
        })
    }
}
