//! The fault runs' targeted checks: a fresh credential on one replica (outside the pool), its
//! logout or rotation there, and right after a fault, that the revoked credential and the
//! rotated-away refresh token are refused. `faults.rs` calls these around the faults it injects.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use auth_api::v1::{self as pb, CredentialKind, login_response::Credential as LoginCredential};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::{Target, Workload};
use crate::{
    RunError,
    pool::{Credential, Entry, Fate},
    stats::{Class, status_label},
};

impl Workload {
    /// Targeted checks (the fault runs): a fresh credential on `target`, outside the pool.
    pub async fn fresh_token_pair(&self, target: &Target) -> Result<Arc<Entry>, RunError> {
        let request = self.request(pb::LoginRequest {
            email: self.users.first().ok_or("no users")?.clone(),
            password: self.config.password.clone(),
            kind: CredentialKind::Tokens as i32,
            management: false,
        });
        let (result, _) = self.call(target.auth.clone().login(request)).await;
        match result?.credential {
            Some(LoginCredential::Tokens(pair)) => Ok(Entry::new(
                0,
                Credential::Tokens {
                    access: pair.access_token,
                    refresh: pair.refresh_token,
                },
            )),
            _ => Err("a token login answered without a token pair".into()),
        }
    }

    pub async fn logout_on(&self, target: &Target, entry: &Arc<Entry>) -> Result<(), Status> {
        entry.set_fate(Fate::Revoking);
        let request = self.request(pb::LogoutRequest {
            token: entry.credential().bearer().to_owned(),
        });
        let (result, _) = self.call(target.auth.clone().logout(request)).await;
        match result {
            Ok(_) => {
                entry.set_fate(Fate::Revoked(Instant::now()));
                self.pool.add_revoked(Arc::clone(entry));
                Ok(())
            }
            Err(status) => {
                entry.set_fate(Fate::Unknown);
                Err(status)
            }
        }
    }

    /// Rotates `entry`'s refresh token on `target`; returns the token it replaced.
    pub async fn rotate_on(&self, target: &Target, entry: &Arc<Entry>) -> Result<String, RunError> {
        let Credential::Tokens { refresh, .. } = entry.credential() else {
            return Err("not a token pair".into());
        };
        if self
            .refresh_entry(target, entry, refresh.clone(), "targeted refresh")
            .await
        {
            Ok(refresh)
        } else {
            Err(format!("the refresh on {} failed", target.name).into())
        }
    }

    /// Checks of one credential right after a fault: remote on `target`, then local.
    pub async fn check_refused_everywhere(
        &self,
        target: &Target,
        entry: &Arc<Entry>,
        op: &'static str,
    ) {
        let credential = entry.credential();
        self.verify_remote(target, entry, &credential, op).await;
        if let (Credential::Tokens { access, .. }, Some(verifier)) = (&credential, &self.verifier) {
            let deadline = Instant::now() + self.config.local_bound;
            // Within the bound the feed may still be carrying the news; past it, refusal or bust.
            while verifier.verify_token(access).await.is_ok() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.verify_local(verifier, entry, access, op).await;
        }
    }

    /// Spends a refresh token that was rotated away: it must be refused (and kill the session).
    pub async fn check_old_refresh_refused(&self, target: &Target, old_refresh: String) {
        let request = self.request(pb::RefreshRequest {
            refresh_token: old_refresh,
        });
        let (result, latency) = self.call(target.auth.clone().refresh(request)).await;
        match result {
            Ok(_) => {
                self.recorder.violation(format!(
                    "a rotated-away refresh token was accepted again by {}",
                    target.name
                ));
                self.recorder
                    .record("replayed refresh", "OK", Class::Unexpected, latency);
            }
            // Reuse, and only reuse: any other refusal (TOKEN_INVALID, say) would mean the
            // rotation was lost or the token was never checked as a spent one.
            Err(status)
                if status.code() == Code::Unauthenticated
                    && status
                        .get_details_error_info()
                        .is_some_and(|info| info.reason == "REFRESH_TOKEN_REUSED") =>
            {
                self.recorder.record(
                    "replayed refresh",
                    &status_label(&status),
                    Class::Expected,
                    latency,
                );
            }
            Err(status) => {
                let class = self.failure_class("replayed refresh", &target.name, &status);
                self.recorder
                    .record("replayed refresh", &status_label(&status), class, latency);
            }
        }
    }
}
