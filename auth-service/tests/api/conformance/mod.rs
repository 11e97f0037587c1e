//! The conformance suite's Rust side (`conformance/README.md`): the committed vectors are what
//! `vectors.rs` generates, and the Rust verifier gives every verdict they expect. The Python and
//! Node verifiers (`clients/`) run the same files, so a rule one of them misses fails CI.

mod live;
mod vectors;

use std::{path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use auth_api::{
    LocalVerifier, LocalVerifierConfig, VerifyError,
    access_token::{self, Audience, TokenRules},
    v1::{
        GetJwksRequest, GetJwksResponse, KeysChanged, RevocationEvent, SessionRevoked,
        SigningKeyRevoked, SnapshotComplete, UserSessionsRevoked, WatchRevocationsRequest,
        key_service_server::{KeyService, KeyServiceServer},
        revocation_event::Event,
    },
};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, transport::Server};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/vectors")
}

fn reason(result: Result<(), VerifyError>) -> String {
    match result {
        Ok(()) => "OK".into(),
        Err(error) => {
            let status = error.to_status();
            tonic_types::StatusExt::get_error_details(&status)
                .error_info()
                .map(|info| info.reason.clone())
                .unwrap_or_else(|| format!("{error:?}"))
        }
    }
}

#[test]
fn the_committed_vectors_are_what_the_generator_writes() {
    for (file, generated) in [
        ("tokens.json", vectors::tokens()),
        ("sequences.json", vectors::sequences()),
    ] {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        let path = vectors_dir().join(file);
        if std::env::var_os("UPDATE_VECTORS").is_some() {
            std::fs::create_dir_all(vectors_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} differs from what the generator writes: run `UPDATE_VECTORS=1 cargo test -p auth-service --test api conformance` and commit it",
            path.display()
        );
    }
}

#[test]
fn the_rust_token_rules_give_every_verdict_of_the_token_vectors() {
    let vectors = vectors::tokens();
    let rules = TokenRules {
        issuer: vectors["issuer"].as_str().unwrap().into(),
        leeway: Duration::from_secs(vectors["leeway_seconds"].as_u64().unwrap()),
    };
    let keys: Vec<_> = vectors["jwks"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(access_token::decoding_key_from_jwk)
        .collect();
    let audience = vectors["audience"].as_str().unwrap();
    let now = vectors["now"].as_i64().unwrap();
    let mut wrong = Vec::new();
    for case in vectors["cases"].as_array().unwrap() {
        let token = case["token"].as_str().unwrap();
        // What LocalVerifier::verify_token does on first sight, minus the feed.
        let verdict = access_token::key_id(token)
            .map_err(VerifyError::from)
            .and_then(|kid| {
                let (_, key) = keys
                    .iter()
                    .find(|(known, _)| *known == kid)
                    .ok_or(VerifyError::Invalid)?;
                access_token::verify(token, key, &rules, Audience::Exactly(audience), now)
                    .map_err(VerifyError::from)
            });
        if let (Ok(claims), Some(principal)) = (&verdict, case.get("principal")) {
            assert_eq!(claims.sub, principal["user_id"], "{}", case["name"]);
            assert_eq!(claims.sid, principal["session_id"], "{}", case["name"]);
            assert_eq!(
                serde_json::json!(claims.roles),
                principal["roles"],
                "{}",
                case["name"]
            );
            let kind = if claims.service == Some(true) {
                "service"
            } else {
                "user"
            };
            assert_eq!(kind, principal["kind"], "{}", case["name"]);
            assert_eq!(
                serde_json::json!(claims.actors()),
                principal["actors"],
                "{}",
                case["name"]
            );
        }
        let got = reason(verdict.map(|_| ()));
        if got != case["expect"] {
            wrong.push(format!(
                "{}: expected {}, got {got}",
                case["name"], case["expect"]
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

type FeedEvents = mpsc::Receiver<Result<RevocationEvent, Status>>;

/// A KeyService that answers with a sequence's key set and streams the events the test sends:
/// the feed of `sequences.json`, so the real [`LocalVerifier`] runs each sequence end to end.
#[derive(Clone)]
struct ScriptedKeys {
    jwks: Arc<Mutex<String>>,
    feed: Arc<Mutex<Option<FeedEvents>>>,
}

#[tonic::async_trait]
impl KeyService for ScriptedKeys {
    async fn get_jwks(
        &self,
        _: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        Ok(Response::new(GetJwksResponse {
            jwks_json: self.jwks.lock().await.clone(),
        }))
    }

    type WatchRevocationsStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<RevocationEvent, Status>> + Send>>;

    async fn watch_revocations(
        &self,
        _: Request<WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let events = self.feed.lock().await.take();
        let events = events.ok_or_else(|| Status::unavailable("one feed per sequence"))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(events))))
    }
}

fn timestamp(value: &Value) -> Option<prost_types::Timestamp> {
    value
        .as_i64()
        .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 })
}

/// The feed event a sequence step describes, if it is one.
fn feed_event(step: &Value) -> Option<Event> {
    if let Some(jwks) = step.get("keys_changed") {
        return Some(Event::KeysChanged(KeysChanged {
            jwks_json: jwks.to_string(),
        }));
    }
    if let Some(kid) = step.get("signing_key_revoked") {
        return Some(Event::SigningKeyRevoked(SigningKeyRevoked {
            kid: kid.as_str()?.into(),
        }));
    }
    if let Some(revoked) = step.get("session_revoked") {
        return Some(Event::SessionRevoked(SessionRevoked {
            session_id: revoked["session_id"].as_str()?.into(),
            tokens_live_until: timestamp(&revoked["tokens_live_until"]),
            ..Default::default()
        }));
    }
    if let Some(revoked) = step.get("user_sessions_revoked") {
        return Some(Event::UserSessionsRevoked(UserSessionsRevoked {
            user_id: revoked["user_id"].as_str()?.into(),
            revoked_before: timestamp(&revoked["revoked_before"]),
            ..Default::default()
        }));
    }
    None
}

#[tokio::test]
async fn the_rust_local_verifier_gives_every_verdict_of_the_feed_sequences() {
    let vectors = vectors::sequences();
    let audience = vectors["audience"].as_str().unwrap();
    let mut wrong = Vec::new();
    for sequence in vectors["sequences"].as_array().unwrap() {
        let name = &sequence["name"];
        let (sender, receiver) = mpsc::channel(16);
        let keys = ScriptedKeys {
            jwks: Arc::new(Mutex::new(sequence["jwks"].to_string())),
            feed: Arc::new(Mutex::new(Some(receiver))),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(
            Server::builder()
                .add_service(KeyServiceServer::new(keys.clone()))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let snapshot = sequence["snapshot"].as_array().cloned().unwrap_or_default();
        let mut cursor = 0;
        let mut send = |event: Event| {
            cursor += 1;
            let sender = sender.clone();
            async move {
                sender
                    .send(Ok(RevocationEvent {
                        cursor: cursor.to_string(),
                        event: Some(event),
                    }))
                    .await
                    .unwrap();
            }
        };
        for step in &snapshot {
            send(feed_event(step).unwrap()).await;
        }
        send(Event::SnapshotComplete(SnapshotComplete {})).await;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let verifier = LocalVerifier::connect(channel, LocalVerifierConfig::new(audience))
            .await
            .unwrap();
        for (index, step) in sequence["steps"].as_array().unwrap().iter().enumerate() {
            if let Some(jwks) = step.get("publish") {
                *keys.jwks.lock().await = jwks.to_string();
            } else if let Some(token) = step.get("verify") {
                let got = reason(
                    verifier
                        .verify_token(token.as_str().unwrap())
                        .await
                        .map(|_| ()),
                );
                if got != step["expect"] {
                    wrong.push(format!(
                        "{name}, step {index}: expected {}, got {got}",
                        step["expect"]
                    ));
                }
            } else {
                // The key set the feed announces is also what GetJwks answers from then on.
                if let Some(jwks) = step.get("keys_changed") {
                    *keys.jwks.lock().await = jwks.to_string();
                }
                let applied = verifier.next_feed_event();
                send(feed_event(step).unwrap()).await;
                tokio::time::timeout(Duration::from_secs(5), applied)
                    .await
                    .unwrap();
            }
        }
        server.abort();
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
