//! Revocation feed streams are capped per connection and per address: a client opening streams
//! without end is refused (`RESOURCE_EXHAUSTED`, `TOO_MANY_STREAMS`) instead of holding a task
//! and a buffer each on the server, and a closed stream frees its place.

use std::time::Duration;

use auth_api::v1::{self as pb, key_service_client::KeyServiceClient};
use tonic::{Code, Streaming, transport::Channel};

use crate::helpers::{Backend, TestApp, TestResult, assert_error, on_both_backends};

on_both_backends!(feed_streams_beyond_the_cap_are_refused_and_a_closed_one_frees_its_place);

async fn open(channel: &Channel) -> Result<Streaming<pb::RevocationEvent>, tonic::Status> {
    Ok(KeyServiceClient::new(channel.clone())
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await?
        .into_inner())
}

async fn feed_streams_beyond_the_cap_are_refused_and_a_closed_one_frees_its_place(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.max_feed_streams_per_connection = 2;
        settings.max_feed_streams_per_address = 3;
    })
    .await?;
    // One channel is one HTTP/2 connection.
    let first = open(&app.channel).await?;
    let _second = open(&app.channel).await?;
    assert_error(
        open(&app.channel).await,
        Code::ResourceExhausted,
        "TOO_MANY_STREAMS",
    );

    // Another connection from the same address gets the address's last place.
    let other = Channel::from_shared(format!("http://{}", app.addr))?
        .connect()
        .await?;
    let _third = open(&other).await?;
    assert_error(
        open(&other).await,
        Code::ResourceExhausted,
        "TOO_MANY_STREAMS",
    );

    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match open(&other).await {
            Ok(_reopened) => return Ok(()),
            Err(status) if tokio::time::Instant::now() < deadline => {
                assert_eq!(status.code(), Code::ResourceExhausted);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => {
                return Err(format!("the closed stream's place never freed: {status:?}").into());
            }
        }
    }
}
