//! The operations that change what the client holds: login (a new credential in the pool),
//! logout (a credential moves to the revoked set, with the instant its revocation was
//! acknowledged) and refresh (the entry's tokens rotate). A failure whose effect is unknown marks
//! the credential `Fate::Unknown`, so nothing more is asserted about it.

use std::{sync::Arc, time::Instant};

use auth_api::v1::{self as pb, CredentialKind, login_response::Credential as LoginCredential};
use tonic::{Code, Status};

use super::{Target, Workload};
use crate::{
    pool::{Credential, Entry, Fate},
    rng::Rng,
    stats::{Class, status_label},
};

impl Workload {
    pub(super) async fn login(&self, rng: &mut Rng) {
        let started = Instant::now();
        match self.login_once(rng).await {
            Ok((user, credential)) => {
                self.pool.add(Entry::new(user, credential));
                self.recorder
                    .record("login", "OK", Class::Ok, started.elapsed());
            }
            Err(status) => {
                let class = self.failure_class("login", "a replica", &status);
                self.recorder
                    .record("login", &status_label(&status), class, started.elapsed());
            }
        }
    }

    pub(super) async fn login_once(&self, rng: &mut Rng) -> Result<(usize, Credential), Status> {
        let user = rng.below(self.users.len());
        let kind = if rng.chance(self.config.session_per_mille) {
            CredentialKind::Session
        } else {
            CredentialKind::Tokens
        };
        let request = self.request(pb::LoginRequest {
            email: self.users[user].clone(),
            password: self.config.password.clone(),
            kind: kind as i32,
            management: false,
        });
        let target = self.pick_target(rng);
        let (result, _) = self.call(target.auth.clone().login(request)).await;
        let credential = match result?.credential {
            Some(LoginCredential::Tokens(pair)) => Credential::Tokens {
                access: pair.access_token,
                refresh: pair.refresh_token,
            },
            Some(LoginCredential::Session(session)) => Credential::Session {
                token: session.session_token,
            },
            None => return Err(Status::internal("a login answered without a credential")),
        };
        Ok((user, credential))
    }

    pub(super) async fn logout(&self, rng: &mut Rng) {
        let Some(entry) = self.pool.claim_live(rng) else {
            return;
        };
        let credential = entry.credential();
        entry.set_fate(Fate::Revoking);
        let target = self.pick_target(rng);
        let request = self.request(pb::LogoutRequest {
            token: credential.bearer().to_owned(),
        });
        let (result, latency) = self.call(target.auth.clone().logout(request)).await;
        self.pool.retire(&entry);
        match result {
            Ok(_) => {
                entry.set_fate(Fate::Revoked(Instant::now()));
                self.pool.add_revoked(Arc::clone(&entry));
                self.recorder.record("logout", "OK", Class::Ok, latency);
            }
            Err(status) => {
                // The revocation may or may not have happened: assert nothing more about it.
                entry.set_fate(Fate::Unknown);
                let class = if status.code() == Code::Unauthenticated {
                    Class::Unexpected
                } else {
                    self.failure_class("logout", &target.name, &status)
                };
                self.recorder
                    .record("logout", &status_label(&status), class, latency);
            }
        }
        entry.release();
    }

    pub(super) async fn refresh(&self, rng: &mut Rng) {
        let Some(entry) = self.claim_token_pair(rng) else {
            return;
        };
        let Credential::Tokens { refresh, .. } = entry.credential() else {
            entry.release();
            return;
        };
        let target = self.pick_target(rng);
        self.refresh_entry(target, &entry, refresh, "refresh").await;
        entry.release();
    }

    fn claim_token_pair(&self, rng: &mut Rng) -> Option<Arc<Entry>> {
        for _ in 0..4 {
            let entry = self.pool.claim_live(rng)?;
            if matches!(entry.credential(), Credential::Tokens { .. }) {
                return Some(entry);
            }
            entry.release();
        }
        None
    }

    /// Spends `refresh` (the entry's current refresh token) on `target`. A refusal means an
    /// acknowledged rotation was lost: the token was the session's current one.
    pub(super) async fn refresh_entry(
        &self,
        target: &Target,
        entry: &Arc<Entry>,
        refresh: String,
        op: &'static str,
    ) -> bool {
        let request = self.request(pb::RefreshRequest {
            refresh_token: refresh,
        });
        let (result, latency) = self.call(target.auth.clone().refresh(request)).await;
        match result.map(|response| response.tokens) {
            Ok(Some(pair)) => {
                entry.replace_credential(Credential::Tokens {
                    access: pair.access_token,
                    refresh: pair.refresh_token,
                });
                self.recorder.record(op, "OK", Class::Ok, latency);
                true
            }
            Ok(None) => {
                self.recorder
                    .violation(format!("{op} on {}: OK without tokens", target.name));
                false
            }
            Err(status) => {
                self.pool.retire(&entry.clone());
                entry.set_fate(Fate::Unknown);
                let class = if status.code() == Code::Unauthenticated {
                    self.recorder.violation(format!(
                        "{op} on {}: the current refresh token of a live session was refused ({}): an acknowledged rotation was lost",
                        target.name,
                        status_label(&status)
                    ));
                    Class::Unexpected
                } else {
                    self.failure_class(op, &target.name, &status)
                };
                self.recorder
                    .record(op, &status_label(&status), class, latency);
                false
            }
        }
    }
}
