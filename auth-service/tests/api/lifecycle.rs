//! The real binary's lifecycle and logs: SIGTERM drains cleanly, and no secret reaches a log line.

use std::{
    process::{Child, Command},
    time::Duration,
};

use auth_api::v1::{
    self as pb, auth_service_client::AuthServiceClient, key_service_client::KeyServiceClient,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::{Code, transport::Channel};

use crate::helpers::{
    Backend, PASSWORD, TestDatabase, TestResult, on_both_backends, start_listening, token_pair,
    unique_email, with_bearer,
};

on_both_backends!(no_password_token_or_hash_ever_reaches_the_log);

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

struct Running {
    child: Child,
    channel: Channel,
    /// Reads the captured stderr as it comes: a server whose log pipe is full blocks mid-call.
    logs: Option<std::thread::JoinHandle<String>>,
}

/// The binary on a port it binds itself (`helpers/binary.rs`), connected.
async fn start(
    database: &TestDatabase,
    extra_env: &[(&str, &str)],
    capture_logs: bool,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let mut command = Command::new(BINARY);
    command.envs(database.env()).env("RUST_LOG", "warn");
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let listening = start_listening(command)?;
    let channel = Channel::from_shared(format!("http://{}", listening.addr))?
        .connect()
        .await?;
    Ok(Running {
        child: listening.child,
        channel,
        logs: capture_logs.then_some(listening.logs),
    })
}

fn terminate(child: &Child) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    if !status.success() {
        return Err("kill -TERM failed".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_calls_closes_feeds_and_exits_zero() -> TestResult {
    let database = TestDatabase::create(&Backend::Sqlite).await?;
    // One hashing slot: the registrations below queue behind each other, so several are in
    // flight (received, not answered) when the signal arrives.
    let mut server = start(
        &database,
        &[
            ("AUTH_SHUTDOWN_GRACE", "5s"),
            ("AUTH_HASHING_CONCURRENCY", "1"),
        ],
        false,
    )
    .await?;
    let mut auth = AuthServiceClient::new(server.channel.clone());
    auth.register(pb::RegisterRequest {
        email: unique_email("term"),
        password: PASSWORD.into(),
    })
    .await?;
    let mut feed = KeyServiceClient::new(server.channel.clone())
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await?
        .into_inner();
    while !matches!(
        feed.message().await?.and_then(|event| event.event),
        Some(pb::revocation_event::Event::SnapshotComplete(_))
    ) {}

    // Registrations in flight (each one an argon2 hash, one at a time) when the signal arrives.
    let in_flight: Vec<_> = (0..6)
        .map(|i| {
            let mut client = auth.clone();
            tokio::spawn(async move {
                let result = client
                    .register(pb::RegisterRequest {
                        email: format!("{i}-{}", unique_email("flight")),
                        password: PASSWORD.into(),
                    })
                    .await;
                (result, std::time::Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let signalled = std::time::Instant::now();
    terminate(&server.child)?;

    let mut drained = 0;
    for call in in_flight {
        match call.await? {
            (Ok(_), answered) => drained += usize::from(answered > signalled),
            // Sent after the server stopped taking new calls: refused, never cut in the middle.
            (Err(status), _) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
    }
    // Six hashes in a row outlast the 50 ms before the signal: the drain answered the rest.
    assert!(
        drained >= 1,
        "no call in flight at SIGTERM was answered after it"
    );
    // The feed ends cleanly, so its client can reconnect to another replica.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match feed.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await?;
    assert!(matches!(ended, Ok(None)), "{ended:?}");

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait()? {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    Ok(())
}

async fn no_password_token_or_hash_ever_reaches_the_log(backend: Backend) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    let mut server = start(
        &database,
        &[
            ("RUST_LOG", "debug"),
            ("AUTH_LOG_FORMAT", "json"),
            ("AUTH_EXCHANGE_AUDIENCES", "payments"),
        ],
        true,
    )
    .await?;
    // `start` reads the log as it is written: a full pipe would block the server.
    let mut auth = AuthServiceClient::new(server.channel.clone());
    let email = unique_email("secrets");
    let new_password = "an entirely new passphrase";
    let mut secrets = vec![PASSWORD.to_owned(), new_password.to_owned()];

    auth.register(pb::RegisterRequest {
        email: email.clone(),
        password: PASSWORD.into(),
    })
    .await?;
    let wrong = auth
        .login(pb::LoginRequest {
            email: email.clone(),
            password: "a wrong guess here".into(),
            kind: 0,
            management: false,
        })
        .await;
    assert!(wrong.is_err());
    secrets.push("a wrong guess here".into());
    let tokens = token_pair(
        &auth
            .login(pb::LoginRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                kind: 0,
                management: false,
            })
            .await?
            .into_inner(),
    )?;
    let session = crate::helpers::session_token(
        &auth
            .login(pb::LoginRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                kind: 2,
                management: false,
            })
            .await?
            .into_inner(),
    )?;
    let manager = token_pair(
        &auth
            .login(pb::LoginRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                kind: 0,
                management: true,
            })
            .await?
            .into_inner(),
    )?;
    auth.verify(pb::VerifyRequest {
        token: tokens.access_token.clone(),
        audience: String::new(),
    })
    .await?;
    auth.verify(pb::VerifyRequest {
        token: session.clone(),
        audience: String::new(),
    })
    .await?;
    let rotated = auth
        .refresh(pb::RefreshRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await?
        .into_inner()
        .tokens
        .ok_or("tokens")?;
    let exchanged = auth
        .exchange_token(pb::ExchangeTokenRequest {
            subject_token: session.clone(),
            audience: "payments".into(),
        })
        .await?
        .into_inner()
        .access_token;
    let manager_rotated = auth
        .refresh(pb::RefreshRequest {
            refresh_token: manager.refresh_token.clone(),
        })
        .await?
        .into_inner()
        .tokens
        .ok_or("tokens")?;
    auth.list_sessions(with_bearer(
        &manager_rotated.access_token,
        pb::ListSessionsRequest::default(),
    )?)
    .await?;
    // Refused (an app's token), then done with the management session's.
    assert!(
        auth.list_sessions(with_bearer(
            &rotated.access_token,
            pb::ListSessionsRequest::default(),
        )?)
        .await
        .is_err()
    );
    auth.change_password(with_bearer(
        &manager_rotated.access_token,
        pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: new_password.into(),
        },
    )?)
    .await?;
    let _ = auth
        .refresh(pb::RefreshRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await; // reuse
    auth.logout(pb::LogoutRequest {
        token: rotated.access_token.clone(),
    })
    .await?;
    auth.logout(pb::LogoutRequest {
        token: manager_rotated.access_token.clone(),
    })
    .await?;
    // Stored as SHA-256: every session is revoked by now, so the hashes are computed here rather
    // than read from live sessions.
    let opaque = [
        tokens.refresh_token.clone(),
        rotated.refresh_token.clone(),
        session.clone(),
        manager.refresh_token.clone(),
        manager_rotated.refresh_token.clone(),
    ];
    secrets.extend([
        tokens.access_token,
        tokens.refresh_token,
        rotated.access_token,
        rotated.refresh_token,
        session,
        exchanged,
        manager.access_token,
        manager.refresh_token,
        manager_rotated.access_token,
        manager_rotated.refresh_token,
    ]);

    // What the database holds is secret too: password hashes and token hashes.
    let store = database.store().await?;
    let user = store
        .find_user_by_email_key(&email.to_lowercase())
        .await?
        .ok_or("user")?;
    secrets.push(user.password_hash.clone());
    let salt_and_hash = user
        .password_hash
        .rsplit('$')
        .take(2)
        .map(str::to_owned)
        .collect::<Vec<_>>();
    secrets.extend(salt_and_hash);
    for token in &opaque {
        let hash = auth_service::domain::opaque_token::OpaqueToken::hash_of(token)?.0;
        secrets.push(URL_SAFE_NO_PAD.encode(&hash));
        secrets.push(hash.iter().map(|byte| format!("{byte:02x}")).collect());
    }

    terminate(&server.child)?;
    let logs = server
        .logs
        .take()
        .ok_or("stderr was not captured")?
        .join()
        .map_err(|_| "the log reader panicked")?;
    server.child.wait()?;

    assert!(
        logs.lines().count() > 20,
        "debug logging produced almost nothing:\n{logs}"
    );
    for line in logs.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
    for secret in &secrets {
        // Whole secrets, and any 24-character piece of a token (a truncated print).
        let needles: Vec<&str> = if secret.len() > 40 {
            secret
                .as_bytes()
                .chunks(24)
                .filter(|c| c.len() == 24)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect()
        } else {
            vec![secret.as_str()]
        };
        for needle in needles {
            assert!(
                !logs.contains(needle),
                "a secret fragment {needle:?} appears in the log"
            );
        }
    }
    Ok(())
}
