//! How the workload judges one answer: [`Workload::verify_remote`] and [`Workload::verify_local`]
//! compare a verification with what the pool knows of the credential (accepted after an
//! acknowledged revocation is a violation; for a `LocalVerifier` only past `local_bound`), and
//! `failure_class` decides what any other failure counts as (INTERNAL never passes; UNAVAILABLE,
//! deadlines and broken connections only during an outage). Every operation goes through here.

use std::{sync::Arc, time::Instant};

use auth_api::{LocalVerifier, VerifyError, v1 as pb};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::{Target, Workload};
use crate::{
    pool::{Credential, Entry, Fate},
    stats::{Class, status_label},
};

/// The one message the auth service gives for an unavailable dependency.
const UNAVAILABLE_MESSAGE: &str = "the service is temporarily unavailable; retry later";

impl Workload {
    /// How a failure that is not a refusal of the credential counts.
    pub(super) fn failure_class(&self, op: &str, target: &str, status: &Status) -> Class {
        if status.code() == Code::Internal {
            self.recorder.violation(format!(
                "{op} on {target}: INTERNAL ({:?})",
                status.message()
            ));
            return Class::Unexpected;
        }
        if status.code() == Code::Unavailable
            && status.get_details_error_info().is_some()
            && status.message() != UNAVAILABLE_MESSAGE
        {
            self.recorder.violation(format!(
                "{op} on {target}: UNAVAILABLE with a message other than the fixed one: {:?}",
                status.message()
            ));
            return Class::Unexpected;
        }
        match status.code() {
            Code::ResourceExhausted => Class::Shed,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
                if self.recorder.in_outage() =>
            {
                Class::Tolerated
            }
            // tonic's own word for a call whose connection broke mid-flight (gRPC-Go and
            // grpcio say UNAVAILABLE); the auth service never answers UNKNOWN itself.
            Code::Unknown
                if status.get_details_error_info().is_none() && self.recorder.in_outage() =>
            {
                Class::Tolerated
            }
            _ => Class::Unexpected,
        }
    }

    pub(super) async fn verify_remote(
        &self,
        target: &Target,
        entry: &Arc<Entry>,
        credential: &Credential,
        op: &'static str,
    ) {
        let op = match (op, credential) {
            ("verify", Credential::Tokens { .. }) => "verify-access",
            ("verify", Credential::Session { .. }) => "verify-session",
            (other, _) => other,
        };
        let started = Instant::now();
        let request = self.request(pb::VerifyRequest {
            token: credential.bearer().to_owned(),
            audience: String::new(),
        });
        let (result, latency) = self.call(target.auth.clone().verify(request)).await;
        match result {
            Ok(_) => match entry.revoked_before(started) {
                Some(at) => {
                    self.recorder.violation(format!(
                        "{op} on {}: accepted a credential whose revocation was acknowledged {:.1} ms before the call",
                        target.name,
                        started.duration_since(at).as_secs_f64() * 1000.0
                    ));
                    self.recorder
                        .record(op, "OK after revocation", Class::Unexpected, latency);
                }
                None => self.recorder.record(op, "OK", Class::Ok, latency),
            },
            Err(status) if status.code() == Code::Unauthenticated => {
                let class = if entry.fate() == Fate::Live {
                    Class::Unexpected
                } else {
                    Class::Expected
                };
                self.recorder
                    .record(op, &status_label(&status), class, latency);
            }
            Err(status) => {
                let class = self.failure_class(op, &target.name, &status);
                self.recorder
                    .record(op, &status_label(&status), class, latency);
            }
        }
    }

    pub(super) async fn verify_local(
        &self,
        verifier: &LocalVerifier,
        entry: &Arc<Entry>,
        access: &str,
        op: &'static str,
    ) {
        let started = Instant::now();
        let result = verifier.verify_token(access).await;
        let latency = started.elapsed();
        match result {
            Ok(_) => match entry.revoked_before(started) {
                Some(at) => {
                    let after = started.duration_since(at);
                    if after > self.config.local_bound {
                        self.recorder.violation(format!(
                            "{op}: the LocalVerifier accepted a token {:.1} ms after its revocation was acknowledged (allowed: {:?})",
                            after.as_secs_f64() * 1000.0,
                            self.config.local_bound
                        ));
                        self.recorder
                            .record(op, "OK after revocation", Class::Unexpected, latency);
                    } else {
                        self.recorder.local_acceptance_after_ack(after);
                        self.recorder.record(
                            op,
                            "OK, revocation in flight",
                            Class::Expected,
                            latency,
                        );
                    }
                }
                None => self.recorder.record(op, "OK", Class::Ok, latency),
            },
            Err(error @ (VerifyError::Revoked | VerifyError::Invalid | VerifyError::Expired)) => {
                let class = if entry.fate() == Fate::Live {
                    Class::Unexpected
                } else {
                    Class::Expected
                };
                self.recorder
                    .record(op, &local_label(&error), class, latency);
            }
            Err(VerifyError::Unavailable) if self.recorder.in_outage() => {
                self.recorder
                    .record(op, "UNAVAILABLE", Class::Tolerated, latency);
            }
            Err(error) => {
                self.recorder
                    .record(op, &local_label(&error), Class::Unexpected, latency)
            }
        }
    }
}

fn local_label(error: &VerifyError) -> String {
    match error {
        VerifyError::Missing => "CREDENTIAL_MISSING".into(),
        VerifyError::Invalid => "TOKEN_INVALID".into(),
        VerifyError::Expired => "TOKEN_EXPIRED".into(),
        VerifyError::Revoked => "SESSION_REVOKED".into(),
        VerifyError::MissingRole => "MISSING_ROLE".into(),
        VerifyError::ActorNotAllowed => "ACTOR_NOT_ALLOWED".into(),
        VerifyError::Unavailable => "UNAVAILABLE".into(),
        VerifyError::Remote(status) => status_label(status),
    }
}
