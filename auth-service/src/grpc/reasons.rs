//! The error reasons in the contract and in the code are the same set: every reason the service
//! (or auth-api's verifiers) can send is a value of `auth.v1.ErrorReason`
//! (proto/auth/v1/reasons.proto), every value is sent by something, and README.md's "Error
//! reasons" table lists exactly them. A reason added on one side only fails here.

use std::collections::BTreeSet;
use std::time::Duration;

use auth_api::VerifyError;
use auth_api::v1::ErrorReason;
use tonic_types::StatusExt;

use super::limits::REQUEST_TOO_LARGE;
use super::to_status;
use crate::domain::AuthError;
use crate::domain::gateway::CsrfFailure;

/// One `AuthError` of each variant. The `match` has no wildcard arm: a new variant does not
/// compile until it is chained in here, so it cannot escape the check.
fn every_auth_error() -> Vec<AuthError> {
    fn after(error: &AuthError) -> Option<AuthError> {
        use AuthError::*;
        let wait = Duration::from_secs(1);
        Some(match error {
            InvalidCredentials => EmailTaken,
            EmailTaken => InvalidEmail,
            InvalidEmail => WeakPassword("too short"),
            WeakPassword(_) => PasswordTooLong,
            PasswordTooLong => InvalidArgument("malformed"),
            InvalidArgument(_) => RegistrationDisabled,
            RegistrationDisabled => MissingCredential,
            MissingCredential => TokenInvalid,
            TokenInvalid => TokenExpired,
            TokenExpired => SigningKeyRevoked,
            SigningKeyRevoked => SigningKeyNotFound,
            SigningKeyNotFound => SessionRevoked,
            SessionRevoked => SessionExpired,
            SessionExpired => RefreshTokenReused,
            RefreshTokenReused => PermissionDenied,
            PermissionDenied => AudienceNotAllowed,
            AudienceNotAllowed => ManagementCredentialRequired,
            ManagementCredentialRequired => ReauthenticationRequired,
            ReauthenticationRequired => SessionNotFound,
            SessionNotFound => AccountSuspended,
            AccountSuspended => UserNotFound,
            UserNotFound => UserDeleted,
            UserDeleted => Contended,
            Contended => RateLimited { retry_after: wait },
            RateLimited { .. } => TooManyStreams,
            TooManyStreams => Overloaded { retry_after: wait },
            Overloaded { .. } => CommonPassword,
            CommonPassword => InvalidClientCredentials,
            InvalidClientCredentials => ServiceClientDisabled,
            ServiceClientDisabled => NotAnAccount,
            NotAnAccount => ServiceClientNotFound,
            ServiceClientNotFound => ServiceClientExists,
            ServiceClientExists => ServiceCredentialRequired,
            ServiceCredentialRequired => CodeInvalid,
            CodeInvalid => CodeExpired,
            CodeExpired => Unavailable("database".into()),
            Unavailable(_) => Internal("bug".into()),
            Internal(_) => return None,
        })
    }
    // `take`: a chain that loops by mistake fails the check instead of hanging it.
    std::iter::successors(Some(AuthError::InvalidCredentials), after)
        .take(256)
        .collect()
}

/// The verifiers' own refusals (auth-api), chained the same way. `Remote` passes on the auth
/// service's status, whose reasons come from `to_status`.
fn every_verify_error() -> Vec<VerifyError> {
    fn after(error: &VerifyError) -> Option<VerifyError> {
        use VerifyError::*;
        Some(match error {
            Missing => Invalid,
            Invalid => Expired,
            Expired => Revoked,
            Revoked => MissingRole,
            MissingRole => ActorNotAllowed,
            ActorNotAllowed => Unavailable,
            Unavailable | Remote(_) => return None,
        })
    }
    std::iter::successors(Some(VerifyError::Missing), after).collect()
}

fn reason_of(status: &tonic::Status) -> String {
    match status.get_details_error_info() {
        Some(info) => info.reason,
        None => panic!("{status:?} carries no ErrorInfo"),
    }
}

/// Every reason the code can send.
fn sent_reasons() -> BTreeSet<String> {
    let csrf = [
        CsrfFailure::OriginNotAllowed,
        CsrfFailure::CsrfHeaderMissing,
    ];
    every_auth_error()
        .into_iter()
        .map(|error| reason_of(&to_status(error)))
        .chain(
            every_verify_error()
                .iter()
                .map(|e| reason_of(&e.to_status())),
        )
        .chain(csrf.into_iter().map(|failure| failure.reason().to_owned()))
        .chain([REQUEST_TOO_LARGE.to_owned()])
        .collect()
}

/// Every value of `auth.v1.ErrorReason` but UNSPECIFIED, as the reason string it stands for.
fn contract_reasons() -> BTreeSet<String> {
    (0..1024)
        .filter_map(|number| ErrorReason::try_from(number).ok())
        .filter(|reason| *reason != ErrorReason::Unspecified)
        .map(
            |reason| match reason.as_str_name().strip_prefix("ERROR_REASON_") {
                Some(name) => name.to_owned(),
                None => panic!("{} lacks the ERROR_REASON_ prefix", reason.as_str_name()),
            },
        )
        .collect()
}

/// The reasons in README.md's "Error reasons" table (its rows start with "| `REASON` |").
fn documented_reasons() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let section = readme.split("\n## Error reasons\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once("` |"))
        .map(|(reason, _)| reason.to_owned())
        .collect()
}

#[test]
fn every_reason_sent_is_in_the_contract_enum_and_back() {
    let sent = sent_reasons();
    let contract = contract_reasons();
    assert_eq!(
        sent.difference(&contract).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "sent but missing from enum ErrorReason in proto/auth/v1/reasons.proto (add a value)"
    );
    assert_eq!(
        contract.difference(&sent).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in enum ErrorReason but never sent (values stay: is a mapping missing?)"
    );
}

#[test]
fn the_readme_lists_every_reason_of_the_contract() {
    assert_eq!(documented_reasons(), contract_reasons());
}
