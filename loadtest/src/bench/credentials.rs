//! What the scenarios present: users registered for the run, a token-pair session and a session
//! token each, and many distinct access tokens minted by Refresh chains ([`Credentials`]); the
//! chains themselves ([`Chains`]) are shared with the `refresh` and `mixed` scenarios, which keep
//! rotating them. Minting is set-up, never measured.

use std::sync::Arc;

use auth_api::v1::{
    self as pb, CredentialKind, auth_service_client::AuthServiceClient,
    login_response::Credential as LoginCredential,
};
use tonic::{Status, transport::Channel};

use super::{BenchConfig, Clients};
use crate::{RunError, workload};

/// Credentials for the scenarios: users, one token-pair session and one session token each, and
/// `tokens` distinct access tokens minted by Refresh chains across the token sessions.
pub struct Credentials {
    pub emails: Vec<String>,
    pub access_tokens: Vec<String>,
    pub session_tokens: Vec<String>,
    /// The current refresh token of each token session, shared by every scenario that rotates.
    pub chains: Arc<Chains>,
}

impl Credentials {
    pub async fn mint(
        clients: &Clients,
        config: &BenchConfig,
        run_id: &str,
    ) -> Result<Self, RunError> {
        let emails =
            workload::register_users(&clients.auth(0), run_id, config.users, &config.password)
                .await?;
        let mut access_tokens = Vec::new();
        let mut refresh_tokens = Vec::new();
        let mut session_tokens = Vec::new();
        for (index, email) in emails.iter().enumerate() {
            let mut auth = clients.auth(index);
            for kind in [CredentialKind::Tokens, CredentialKind::Session] {
                let login = auth
                    .login(pb::LoginRequest {
                        email: email.clone(),
                        password: config.password.clone(),
                        kind: kind as i32,
                        management: false,
                    })
                    .await?
                    .into_inner();
                match login.credential {
                    Some(LoginCredential::Tokens(pair)) => {
                        access_tokens.push(pair.access_token);
                        refresh_tokens.push(pair.refresh_token);
                    }
                    Some(LoginCredential::Session(session)) => {
                        session_tokens.push(session.session_token)
                    }
                    None => return Err("a login answered without a credential".into()),
                }
            }
        }
        let mut credentials = Self {
            emails,
            access_tokens,
            session_tokens,
            chains: Chains::new(refresh_tokens),
        };
        credentials
            .mint_access_tokens(clients, config.tokens)
            .await?;
        Ok(credentials)
    }

    /// Refreshes the sessions round-robin (each chain in its own task) until `count` distinct
    /// access tokens exist; every one of them stays valid until it expires.
    pub async fn mint_access_tokens(
        &mut self,
        clients: &Clients,
        count: usize,
    ) -> Result<(), RunError> {
        let chains = self.chains.len().max(1);
        let per_chain = count
            .saturating_sub(self.access_tokens.len())
            .div_ceil(chains);
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..chains {
            let mut auth = clients.auth(index);
            let chains = Arc::clone(&self.chains);
            tasks.spawn(async move {
                let mut minted = Vec::with_capacity(per_chain);
                for _ in 0..per_chain {
                    match chains.refresh(index, &mut auth).await {
                        Some(Ok(access)) => minted.push(access),
                        Some(Err(status)) => return Err(status),
                        None => break,
                    }
                }
                Ok::<_, Status>(minted)
            });
        }
        while let Some(chain) = tasks.join_next().await {
            self.access_tokens.extend(chain??);
        }
        Ok(())
    }
}

/// Refresh chains: each chain (one session) is spent by one caller at a time.
pub struct Chains {
    current: Vec<std::sync::Mutex<String>>,
}

impl Chains {
    fn new(refresh_tokens: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            current: refresh_tokens
                .into_iter()
                .map(std::sync::Mutex::new)
                .collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// Spends chain `index`'s current token and returns the new access token; `None` when the
    /// chain is in use by another caller or retired (an earlier refresh of it failed).
    pub(super) async fn refresh(
        &self,
        index: usize,
        client: &mut AuthServiceClient<Channel>,
    ) -> Option<Result<String, Status>> {
        let slot = self.current.get(index % self.current.len().max(1))?;
        // Taken out of the slot while it is spent, so no other caller presents it meanwhile (a
        // second presentation would be reuse and end the session); put back only on success.
        let token = {
            let mut guard = slot.try_lock().ok()?;
            if guard.is_empty() {
                return None;
            }
            std::mem::take(&mut *guard)
        };
        let answer = client
            .refresh(pb::RefreshRequest {
                refresh_token: token,
            })
            .await
            .map(|response| response.into_inner().tokens);
        let mut guard = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(match answer {
            Ok(Some(pair)) => {
                *guard = pair.refresh_token;
                Ok(pair.access_token)
            }
            Ok(None) => Err(Status::internal("a refresh without tokens")),
            // The chain's fate is unknown now: it stays retired (empty).
            Err(status) => Err(status),
        })
    }
}
