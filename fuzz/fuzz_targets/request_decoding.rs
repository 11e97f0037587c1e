//! Every RPC's request decoding into the domain: protobuf bytes -> the `auth.v1` request type
//! (the first byte picks which) -> the domain parsers its handler calls on the fields (email,
//! password policy, credential kind, opaque and access token parsing). A decoded message must
//! re-encode to one that decodes to the same value.
#![no_main]

use auth_api::{access_token, v1 as pb};
use auth_service::domain::{accounts::Email, opaque_token::OpaqueToken, passwords::PasswordHasher};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn decode<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<M> {
    let message = M::decode(bytes).ok()?;
    let again = M::decode(message.encode_to_vec().as_slice()).expect("re-encoded message");
    assert_eq!(again, message);
    Some(message)
}

/// What the handlers do with a presented token: tell its kind, then parse it.
fn token(text: &str) {
    if OpaqueToken::looks_like(text) {
        let _ = OpaqueToken::hash_of(text);
    } else {
        let _ = access_token::key_id(text);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 12 {
        0 => {
            if let Some(request) = decode::<pb::RegisterRequest>(bytes) {
                let _ = Email::parse(&request.email);
                let _ = PasswordHasher::check_policy(&request.password);
            }
        }
        1 => {
            if let Some(request) = decode::<pb::LoginRequest>(bytes) {
                let _ = Email::lookup_key(&request.email);
                let _ = pb::CredentialKind::try_from(request.kind);
            }
        }
        2 => {
            if let Some(request) = decode::<pb::VerifyRequest>(bytes) {
                token(&request.token);
            }
        }
        3 => {
            if let Some(request) = decode::<pb::RefreshRequest>(bytes) {
                let _ = OpaqueToken::hash_of(&request.refresh_token);
            }
        }
        4 => {
            if let Some(request) = decode::<pb::LogoutRequest>(bytes) {
                token(&request.token);
            }
        }
        5 => {
            let _ = decode::<pb::ListSessionsRequest>(bytes);
        }
        6 => {
            let _ = decode::<pb::RevokeSessionRequest>(bytes);
        }
        7 => {
            let _ = decode::<pb::RevokeAllSessionsRequest>(bytes);
        }
        8 => {
            if let Some(request) = decode::<pb::ChangePasswordRequest>(bytes) {
                let _ = PasswordHasher::check_policy(&request.new_password);
            }
        }
        9 => {
            if let Some(request) = decode::<pb::ExchangeTokenRequest>(bytes) {
                token(&request.subject_token);
            }
        }
        10 => {
            let _ = decode::<pb::GetJwksRequest>(bytes);
        }
        _ => {
            let _ = decode::<pb::WatchRevocationsRequest>(bytes);
        }
    }
});
