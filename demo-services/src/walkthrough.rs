//! The demo's story, as steps with an expected outcome each: register, log in, order (paid by
//! order-service with a token it exchanged as itself), charge payment-service directly (refused
//! with the login credential; an exchange without a service credential refused; accepted with a
//! "payments" token exchanged as order-service), log out, and then both services refuse the
//! session: order-service on its next call (it asks the auth service), payment-service as soon as
//! the revocation feed has reached its LocalVerifier, which the walkthrough times. Last, with a
//! new session, the operator disables the `order-service` client while orders keep coming: the
//! next charge is refused, also timed.
//!
//! [`run`] reports every step as it completes (the `demo` binary prints them) and returns a
//! [`Report`]; the integration test asserts on the same report. A step that does not behave as
//! expected ends the walkthrough, since later steps build on it.

mod as_service;
mod probe;
mod story;

use std::{fmt, time::Duration};

use tonic::{Code, Status, transport::Uri};

use crate::{config::CredentialChoice, error_reason, operator::Operator};

/// Where the three services are, and the operator's credentials (the admin's token and
/// order-service's client secret) for the steps that act as order-service and disable it.
#[derive(Clone, Debug)]
pub struct Targets {
    pub auth: Uri,
    pub order: Uri,
    pub payment: Uri,
    pub operator: Option<Operator>,
}

/// What a step should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Accepted,
    Rejected { code: Code, reason: &'static str },
}

/// What it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, with what the answer said.
    Accepted(String),
    /// Accepted, but the answer was not what the story needs.
    AcceptedWrongly(String),
    Rejected {
        code: Code,
        reason: Option<String>,
        message: String,
    },
}

#[derive(Clone, Debug)]
pub struct Step {
    pub number: usize,
    pub action: String,
    pub expected: Expect,
    pub outcome: Outcome,
    /// Extra facts about the step (timings).
    pub note: Option<String>,
}

impl Step {
    pub fn passed(&self) -> bool {
        match (&self.expected, &self.outcome) {
            (Expect::Accepted, Outcome::Accepted(_)) => true,
            (
                Expect::Rejected { code, reason },
                Outcome::Rejected {
                    code: got,
                    reason: why,
                    ..
                },
            ) => code == got && why.as_deref() == Some(*reason),
            _ => false,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>2}. {}", self.number, self.action)?;
        match &self.outcome {
            Outcome::Accepted(what) => write!(f, "    accepted: {what}")?,
            Outcome::AcceptedWrongly(what) => write!(f, "    accepted, but {what}")?,
            Outcome::Rejected {
                code,
                reason,
                message,
            } => write!(
                f,
                "    rejected: {code:?} {} ({message})",
                reason.as_deref().unwrap_or("(no ErrorInfo reason)")
            )?,
        }
        if let Some(note) = &self.note {
            write!(f, "\n    {note}")?;
        }
        match (&self.expected, self.passed()) {
            (_, true) => write!(f, "\n    ok"),
            (Expect::Accepted, false) => write!(f, "\n    FAILED: expected it to be accepted"),
            (Expect::Rejected { code, reason }, false) => {
                write!(f, "\n    FAILED: expected a rejection {code:?} {reason}")
            }
        }
    }
}

/// How long a revocation (the logout, the disabled client) took to stop a charge.
#[derive(Clone, Copy, Debug)]
pub struct RevocationTiming {
    /// From sending the revoking call (Logout, DisableServiceClient) to its response.
    pub logout_returned_after: Duration,
    /// From sending Logout to payment-service's first refusal of the exchanged token.
    pub refused_after: Duration,
    /// Charges payment-service answered (as replays: nothing was charged twice) meanwhile.
    pub accepted_meanwhile: u32,
    /// Charge calls made from sending Logout to the refusal, the refused one included.
    pub attempts: u32,
}

#[derive(Debug, Default)]
pub struct Report {
    pub steps: Vec<Step>,
    /// Set once payment-service has refused the revoked session.
    pub revocation: Option<RevocationTiming>,
    /// Set once order-service could charge no more after its client was disabled.
    pub disable: Option<RevocationTiming>,
    /// Every step ran (none was cut short by an earlier failure).
    pub completed: bool,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.completed && self.steps.iter().all(Step::passed)
    }

    pub fn step(&self, number: usize) -> Option<&Step> {
        self.steps.iter().find(|step| step.number == number)
    }
}

struct Walk<'a> {
    report: Report,
    on_step: &'a mut (dyn FnMut(&Step) + Send),
}

impl Walk<'_> {
    fn record(
        &mut self,
        action: String,
        expected: Expect,
        outcome: Outcome,
        note: Option<String>,
    ) -> bool {
        let step = Step {
            number: self.report.steps.len() + 1,
            action,
            expected,
            outcome,
            note,
        };
        (self.on_step)(&step);
        let passed = step.passed();
        self.report.steps.push(step);
        passed
    }

    /// A step that must succeed; `check` describes the answer, or says what is wrong with it.
    fn accepted<T>(
        &mut self,
        action: impl Into<String>,
        result: Result<T, Status>,
        check: impl FnOnce(&T) -> Result<String, String>,
    ) -> Option<T> {
        let (outcome, value) = match result {
            Ok(value) => match check(&value) {
                Ok(what) => (Outcome::Accepted(what), Some(value)),
                Err(wrong) => (Outcome::AcceptedWrongly(wrong), None),
            },
            Err(status) => (rejection(&status), None),
        };
        let passed = self.record(action.into(), Expect::Accepted, outcome, None);
        value.filter(|_| passed)
    }

    /// A step that must be refused with `code` and the `ErrorInfo` reason `reason`.
    fn rejected<T>(
        &mut self,
        action: impl Into<String>,
        (code, reason): (Code, &'static str),
        result: Result<T, Status>,
        note: Option<String>,
    ) -> Option<()> {
        let outcome = match result {
            Ok(_) => Outcome::AcceptedWrongly("it should have been refused".into()),
            Err(status) => rejection(&status),
        };
        let passed = self.record(
            action.into(),
            Expect::Rejected { code, reason },
            outcome,
            note,
        );
        passed.then_some(())
    }
}

fn rejection(status: &Status) -> Outcome {
    Outcome::Rejected {
        code: status.code(),
        reason: error_reason(status),
        message: status.message().to_owned(),
    }
}

/// Runs the story against the services at `targets`, calling `on_step` after each step.
pub async fn run(
    targets: &Targets,
    credential: CredentialChoice,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Report {
    run_with_tls(targets, None, credential, on_step).await
}

/// [`run`], with `tls` for the `https://` targets (the CA to trust and, for mutual TLS, the
/// client certificate to present). A target whose URL does not fit `tls` fails the first step.
pub async fn run_with_tls(
    targets: &Targets,
    tls: Option<&auth_api::tls::ClientTls>,
    credential: CredentialChoice,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Report {
    let mut walk = Walk {
        report: Report::default(),
        on_step,
    };
    walk.report.completed = story::story(&mut walk, targets, tls, credential)
        .await
        .is_some();
    walk.report
}

pub(crate) fn unix_seconds() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// `1.84 ms`
pub fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}
