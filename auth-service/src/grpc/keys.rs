//! `auth.v1.KeyService`: the public keys and the revocation feed, for services that verify
//! access tokens themselves.

use std::{sync::Arc, time::Duration};

use auth_api::v1::{
    self as pb, GetJwksRequest, GetJwksResponse, key_service_server::KeyService,
    revocation_event::Event,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    convert,
    feed_streams::{FeedStreamCaps, FeedStreams},
    to_status,
};
use crate::{
    domain::{AuthCore, AuthError, Timestamp, model::Revocation},
    engine::{
        feed::Follower,
        hub::{FeedEvent, RevocationHub},
    },
};

/// Events buffered per feed subscriber before the sender waits for the client.
const STREAM_BUFFER: usize = 1024;

pub struct KeyApi {
    core: Arc<AuthCore>,
    revocations: Arc<RevocationHub>,
    heartbeat_interval: Duration,
    /// Becomes true when the server shuts down: feeds end then.
    stopping: watch::Receiver<bool>,
    streams: FeedStreams,
}

impl KeyApi {
    pub fn new(
        core: Arc<AuthCore>,
        revocations: Arc<RevocationHub>,
        heartbeat_interval: Duration,
        stopping: watch::Receiver<bool>,
        stream_caps: FeedStreamCaps,
    ) -> Self {
        Self {
            core,
            revocations,
            heartbeat_interval,
            stopping,
            streams: FeedStreams::new(stream_caps),
        }
    }
}

/// A cursor is the millisecond instant of the last revocation delivered.
fn parse_cursor(cursor: &str) -> Result<Option<Timestamp>, AuthError> {
    if cursor.is_empty() {
        return Ok(None);
    }
    cursor
        .parse::<i64>()
        .map(|millis| Some(Timestamp::from_millis(millis)))
        .map_err(|_| AuthError::InvalidArgument("after_cursor is not a cursor from this feed"))
}

fn event(cursor: Timestamp, event: Event) -> Result<pb::RevocationEvent, Status> {
    Ok(pb::RevocationEvent {
        cursor: cursor.millis().to_string(),
        event: Some(event),
    })
}

fn revocation_event(revocation: &Revocation, hub: &RevocationHub) -> Event {
    match revocation {
        Revocation::Session {
            session_id,
            user_id,
            revoked_at,
        } => Event::SessionRevoked(pb::SessionRevoked {
            session_id: session_id.clone(),
            user_id: user_id.clone(),
            revoked_at: convert::timestamp(*revoked_at),
            tokens_live_until: convert::timestamp(hub.tokens_live_until(*revoked_at)),
        }),
        Revocation::User {
            user_id,
            revoked_before,
        } => Event::UserSessionsRevoked(pb::UserSessionsRevoked {
            user_id: user_id.clone(),
            revoked_before: convert::timestamp(*revoked_before),
            tokens_live_until: convert::timestamp(hub.tokens_live_until(*revoked_before)),
        }),
    }
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn get_jwks(
        &self,
        _request: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        Ok(Response::new(GetJwksResponse {
            jwks_json: self.core.jwks_json(Timestamp::now()).await,
        }))
    }

    type WatchRevocationsStream = ReceiverStream<Result<pb::RevocationEvent, Status>>;

    async fn watch_revocations(
        &self,
        request: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let after = parse_cursor(&request.get_ref().after_cursor).map_err(to_status)?;
        let permit = self
            .streams
            .try_open(request.remote_addr())
            .ok_or_else(|| to_status(AuthError::TooManyStreams))?;
        let now = Timestamp::now();
        let (mut live, snapshot) = Follower::open(self.revocations.clone(), after, now)
            .await
            .map_err(to_status)?;
        let jwks = self.core.jwks_json(now).await;
        let revoked_kids = self.core.revoked_signing_keys().await;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let hub = self.revocations.clone();
        let heartbeat_interval = self.heartbeat_interval.max(Duration::from_millis(100));
        let mut stopping = self.stopping.clone();

        let open_stream = self.revocations.feed_stream_opened();
        tokio::spawn(async move {
            let _open_stream = open_stream;
            let _permit = permit;
            // The follower's cursor is the newest revocation handed out; before any, the start.
            let horizon = hub.relevance_horizon(now);
            let revoked = |revocation: &Revocation| {
                event(revocation.at(), revocation_event(revocation, &hub))
            };
            let mut opening: Vec<_> = snapshot.iter().map(revoked).collect();
            let cursor = live.cursor().unwrap_or(horizon);
            opening.extend(revoked_kids.into_iter().map(|kid| {
                event(
                    cursor,
                    Event::SigningKeyRevoked(pb::SigningKeyRevoked { kid }),
                )
            }));
            opening.push(event(
                cursor,
                Event::KeysChanged(pb::KeysChanged { jwks_json: jwks }),
            ));
            opening.push(event(
                cursor,
                Event::SnapshotComplete(pb::SnapshotComplete {}),
            ));
            for message in opening {
                if sender.send(message).await.is_err() {
                    return;
                }
            }
            let mut heartbeat = tokio::time::interval(heartbeat_interval);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let messages = tokio::select! {
                    // A follower that fell behind re-reads from the database by itself.
                    received = live.next() => match received {
                        Some(Ok(events)) => events
                            .iter()
                            .map(|feed_event| match feed_event {
                                FeedEvent::Revoked(revocation) => revoked(revocation),
                                FeedEvent::KeysChanged(jwks_json) => event(
                                    live.cursor().unwrap_or(horizon),
                                    Event::KeysChanged(pb::KeysChanged {
                                        jwks_json: jwks_json.clone(),
                                    }),
                                ),
                                FeedEvent::KeyRevoked(kid) => event(
                                    live.cursor().unwrap_or(horizon),
                                    Event::SigningKeyRevoked(pb::SigningKeyRevoked {
                                        kid: kid.clone(),
                                    }),
                                ),
                            })
                            .collect(),
                        Some(Err(error)) => vec![Err(to_status(error))],
                        None => return,
                    },
                    _ = heartbeat.tick() => vec![event(
                        live.cursor().unwrap_or(horizon),
                        Event::Heartbeat(pb::Heartbeat {
                            server_time: convert::timestamp(Timestamp::now()),
                        }),
                    )],
                    () = sender.closed() => return,
                    // Ending the stream lets the client reconnect to another replica.
                    () = async { let _ = stopping.wait_for(|stopping| *stopping).await; } => return,
                };
                for message in messages {
                    if sender.send(message).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_millisecond_instants_and_garbage_is_refused() {
        assert_eq!(parse_cursor("").ok(), Some(None));
        assert_eq!(
            parse_cursor("1700000000123").ok(),
            Some(Some(Timestamp::from_millis(1_700_000_000_123)))
        );
        assert!(parse_cursor("yesterday").is_err());
    }
}
