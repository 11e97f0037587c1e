//! Checks that outlast the moment of a revocation: the auditor task re-presents revoked
//! credentials throughout the run (so one forgotten later, after a restart say, is caught), and
//! the final audit after the load checks every revoked credential on every replica and the
//! verifier, and that every live one still works.

use std::time::Duration;

use tokio::sync::watch;

use super::Workload;
use crate::{pool::Credential, rng::Rng};

impl Workload {
    /// Keeps presenting credentials whose revocation was acknowledged, to every kind of verifier.
    pub(super) async fn audit(&self, stop: watch::Receiver<bool>) {
        let mut rng = Rng::new(u64::MAX);
        while !*stop.borrow() {
            let Some(entry) = self.pool.pick_revoked(&mut rng) else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let credential = entry.credential();
            let target = self.pick_target(&mut rng);
            self.verify_remote(target, &entry, &credential, "audit-remote")
                .await;
            if let (Credential::Tokens { access, .. }, Some(verifier)) =
                (&credential, &self.verifier)
            {
                self.verify_local(verifier, &entry, access, "audit-local")
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// After the load: every revoked credential is refused by every replica and the verifier, and
    /// every live one still works (its refresh token rotates).
    pub async fn final_audit(&self) {
        for entry in self.pool.all_revoked() {
            let credential = entry.credential();
            for target in &self.targets {
                self.verify_remote(target, &entry, &credential, "final: revoked, remote")
                    .await;
            }
            if let (Credential::Tokens { access, .. }, Some(verifier)) =
                (&credential, &self.verifier)
            {
                self.verify_local(verifier, &entry, access, "final: revoked, local")
                    .await;
            }
        }
        let mut rng = Rng::new(7);
        for entry in self.pool.all_live() {
            let target = self.pick_target(&mut rng);
            match entry.credential() {
                Credential::Tokens { refresh, .. } => {
                    self.refresh_entry(target, &entry, refresh, "final: live, refresh")
                        .await;
                }
                credential @ Credential::Session { .. } => {
                    self.verify_remote(target, &entry, &credential, "final: live, verify")
                        .await;
                }
            }
        }
    }
}
