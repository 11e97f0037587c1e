//! Bounded data: the pruner deletes what no rule needs any more (ended sessions with their
//! refresh-token hashes, old change-log rows, retired key rows) and nothing a rule still needs:
//! reuse detection and `WatchRevocations` resumption keep working across a prune.

use std::{process::Command, time::Duration};

use auth_api::v1::{self as pb, WatchRevocationsRequest};
use auth_service::{
    config::Settings,
    domain::{
        Timestamp,
        model::SessionKind,
        ports::{NewSession, RefreshRotation, RevokeReason, SigningKeyRecord, Store, UserRecord},
    },
    engine::{
        keys::generate_key,
        pruner::{self, PruneOutcome},
    },
};
use tonic::Code;

use crate::{
    helpers::{
        Backend, TestApp, TestDatabase, TestResult, assert_error, on_both_backends, test_settings,
        token_pair, unique_email,
    },
    revocation_feed::{logout, next_revocation, read_snapshot, revoked_session_ids},
};

on_both_backends!(
    a_replayed_refresh_token_is_refused_before_and_after_its_session_is_pruned,
    prune_dry_run_counts_and_prune_deletes_exactly_what_is_past_the_horizons,
    a_feed_resumed_from_a_cursor_across_a_prune_still_reports_every_revocation_that_matters,
    the_background_pruner_deletes_old_rows_and_one_process_prunes_at_a_time,
);

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Short retentions (the shortest the rules allow are about 17 minutes with the default token
/// lifetime), and no background pruning unless a test asks for it.
fn short_retention(settings: &mut Settings) {
    settings.storage.retain_ended_sessions = HOUR;
    settings.storage.retain_change_log = HOUR;
    settings.storage.prune_interval = Duration::ZERO;
    settings.storage.prune_batch_pause = Duration::ZERO;
    // Small batches, so every loop of the pruner runs more than once.
    settings.storage.prune_batch_size = 2;
    settings.refresh_reuse_grace = Duration::ZERO;
}

async fn prune_at(app: &TestApp, now: Timestamp) -> Result<PruneOutcome, Error> {
    let store = app.database.store().await?;
    Ok(pruner::prune(store.as_ref(), &app.settings.prune_rules(), now, false).await?)
}

async fn a_replayed_refresh_token_is_refused_before_and_after_its_session_is_pruned(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, short_retention).await?;
    let (login, first) = app.user_with_tokens(&unique_email("reuse")).await?;
    let second = app.refresh(&first.refresh_token).await?;
    let third = app.refresh(&second.refresh_token).await?;
    let (_, bystander) = app.user_with_tokens(&unique_email("live")).await?;

    // Two hours on, with an hour's retention: the session is live, so its spent hashes stay.
    let later = Timestamp::now().plus(2 * HOUR);
    assert!(matches!(prune_at(&app, later).await?, PruneOutcome::Pruned(c) if c.total() == 0));
    assert_error(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    // Ended, within the retention: refused as the session's end.
    for token in [&second.refresh_token, &third.refresh_token] {
        assert_error(
            app.refresh(token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    // Past the retention: the session and every hash of it are gone; a replay is an unknown
    // token, refused as invalid (never valid again).
    let PruneOutcome::Pruned(pruned) = prune_at(&app, later).await? else {
        return Err("the prune did not run".into());
    };
    assert_eq!((pruned.sessions, pruned.refresh_tokens), (1, 3));
    let store = app.database.store().await?;
    assert!(store.find_session(&login.session_id).await?.is_none());
    for token in [&first, &second, &third] {
        assert_error(
            app.refresh(&token.refresh_token).await,
            Code::Unauthenticated,
            "TOKEN_INVALID",
        );
        assert_error(
            app.verify(&token.access_token).await,
            Code::Unauthenticated,
            "TOKEN_INVALID",
        );
    }
    // The live session was untouched.
    let next = app.refresh(&bystander.refresh_token).await?;
    app.verify(&next.access_token).await?;
    Ok(())
}

/// Rows seeded with instants in the past, before the server starts; what an hour's retention
/// (seven days for keys) must prune, and what it must keep.
struct Seeded {
    pruned_sessions: Vec<String>,
    kept_sessions: Vec<String>,
    pruned_hashes: Vec<Vec<u8>>,
    kept_hashes: Vec<Vec<u8>>,
    pruned_keys: Vec<String>,
    kept_keys: Vec<String>,
}

/// A seeded session: created `age` ago, refreshed `rotations` ago, revoked `revoked` ago.
struct SeedSession {
    name: &'static str,
    age: Duration,
    idle: Duration,
    expires_at: Timestamp,
    rotations: Vec<Duration>,
    revoked: Option<Duration>,
    pruned: bool,
}

impl SeedSession {
    fn new(name: &'static str, age: Duration, idle: Duration, expires_at: Timestamp) -> Self {
        Self {
            name,
            age,
            idle,
            expires_at,
            rotations: Vec::new(),
            revoked: None,
            pruned: false,
        }
    }

    fn rotated(self, rotations: &[Duration]) -> Self {
        Self {
            rotations: rotations.to_vec(),
            ..self
        }
    }

    fn revoked(self, ago: Duration) -> Self {
        Self {
            revoked: Some(ago),
            ..self
        }
    }

    fn pruned(self) -> Self {
        Self {
            pruned: true,
            ..self
        }
    }
}

async fn seed(store: &dyn Store, now: Timestamp) -> Result<Seeded, Error> {
    let email = unique_email("seeded");
    let user_id = auth_service::domain::opaque_token::new_id()?;
    store
        .insert_user(&UserRecord {
            id: user_id.clone(),
            email: email.clone(),
            email_key: email.to_lowercase(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2VlZA$c2VlZA".into(),
            roles: String::new(),
            created_at: now.minus(40 * DAY),
            suspended_at: None,
        })
        .await?;
    let mut seeded = Seeded {
        pruned_sessions: Vec::new(),
        kept_sessions: Vec::new(),
        pruned_hashes: Vec::new(),
        kept_hashes: Vec::new(),
        pruned_keys: Vec::new(),
        kept_keys: Vec::new(),
    };
    let sessions = [
        // Rotated within its idle timeout each time (a rotation refuses an idle session).
        SeedSession::new("live", 10 * DAY, 7 * DAY, now.plus(20 * DAY)).rotated(&[4 * DAY, DAY]),
        SeedSession::new("revoked-old", 3 * HOUR, 7 * DAY, now.plus(DAY))
            .rotated(&[150 * MINUTE])
            .revoked(2 * HOUR)
            .pruned(),
        SeedSession::new("revoked-recent", HOUR, 7 * DAY, now.plus(DAY)).revoked(30 * MINUTE),
        SeedSession::new("expired-old", 30 * DAY, 7 * DAY, now.minus(2 * HOUR)).pruned(),
        SeedSession::new("idle-old", 3 * HOUR, HOUR, now.plus(DAY)).pruned(),
        SeedSession::new("idle-recent", 70 * MINUTE, HOUR, now.plus(DAY)),
    ];
    for SeedSession {
        name,
        age,
        idle,
        expires_at,
        rotations,
        revoked,
        pruned,
    } in sessions
    {
        let id = format!("{name}-{}", auth_service::domain::opaque_token::new_id()?);
        let hash = |n: usize| format!("{id}/{n}").into_bytes();
        store
            .insert_session(&NewSession {
                id: id.clone(),
                user_id: user_id.clone(),
                kind: SessionKind::Tokens,
                session_token_hash: None,
                refresh_token_hash: Some(hash(0)),
                refresh_expires_at: Some(expires_at),
                created_at: now.minus(age),
                idle_timeout_ms: i64::try_from(idle.as_millis())?,
                expires_at,
                user_agent: "seeded".into(),
                peer_address: "127.0.0.1".into(),
                management: false,
            })
            .await?;
        for (n, ago) in rotations.iter().enumerate() {
            let at = now.minus(*ago);
            assert!(
                store
                    .rotate_refresh(&RefreshRotation {
                        expected_current: hash(n),
                        new_current: hash(n + 1),
                        new_previous: hash(n),
                        rotated_at: at,
                        refresh_expires_at: expires_at,
                        now: at,
                    })
                    .await?
                    .is_some()
            );
        }
        if let Some(ago) = revoked {
            store
                .revoke_session(&id, RevokeReason::Logout, now.minus(ago))
                .await?
                .ok_or("not revoked")?;
        }
        let hashes = (0..=rotations.len()).map(hash);
        if pruned {
            seeded.pruned_hashes.extend(hashes);
            seeded.pruned_sessions.push(id);
        } else {
            seeded.kept_hashes.extend(hashes);
            seeded.kept_sessions.push(id);
        }
    }
    // Erased key rows, older than any key that signs (the server generates that one at start).
    for (dropped, revoked, pruned) in [
        (30 * DAY, false, true),
        (20 * DAY, true, true),
        (DAY, false, false),
    ] {
        let at = now.minus(dropped);
        let key = SigningKeyRecord {
            private_pkcs8: None,
            retires_at: Some(at),
            drop_after: Some(at),
            revoked_at: revoked.then_some(at),
            ..generate_key(at.minus(DAY), at.minus(DAY))?
        };
        store.insert_signing_key(&key).await?;
        if pruned {
            seeded.pruned_keys.push(key.kid);
        } else {
            seeded.kept_keys.push(key.kid);
        }
    }
    Ok(seeded)
}

async fn seeded_app(backend: &Backend, now: Timestamp) -> Result<(TestApp, Seeded), Error> {
    let database = TestDatabase::create(backend).await?;
    let seeded = seed(database.store().await?.as_ref(), now).await?;
    let mut settings = test_settings(&database);
    short_retention(&mut settings);
    Ok((TestApp::start(database, settings).await?, seeded))
}

fn run_prune(database: &TestDatabase, args: &[&str]) -> Result<String, Error> {
    let output = Command::new(BINARY)
        .envs(database.env())
        .env("RUST_LOG", "warn")
        .env("AUTH_RETAIN_ENDED_SESSIONS", "1h")
        .env("AUTH_RETAIN_CHANGE_LOG", "1h")
        .env("AUTH_PRUNE_BATCH_SIZE", "2")
        .args(args)
        .output()?;
    assert!(output.status.success(), "prune failed: {output:?}");
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

async fn prune_dry_run_counts_and_prune_deletes_exactly_what_is_past_the_horizons(
    backend: Backend,
) -> TestResult {
    let (app, seeded) = seeded_app(&backend, Timestamp::now()).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("after")).await?;
    let expected = "sessions=3 refresh_tokens=4 session_changes=1 signing_keys=2";

    for _ in 0..2 {
        assert_eq!(
            run_prune(&app.database, &["prune", "--dry-run"])?,
            format!("would prune: {expected} (dry run: nothing deleted)")
        );
    }
    assert_eq!(
        run_prune(&app.database, &["prune"])?,
        format!("pruned: {expected}")
    );
    assert_eq!(
        run_prune(&app.database, &["prune", "--dry-run"])?,
        "would prune: sessions=0 refresh_tokens=0 session_changes=0 signing_keys=0 (dry run: nothing deleted)"
    );

    let store = app.database.store().await?;
    for id in &seeded.pruned_sessions {
        assert!(store.find_session(id).await?.is_none(), "{id} kept");
    }
    for id in &seeded.kept_sessions {
        assert!(store.find_session(id).await?.is_some(), "{id} pruned");
    }
    for hash in &seeded.pruned_hashes {
        assert!(store.find_session_by_refresh_hash(hash).await?.is_none());
    }
    for hash in &seeded.kept_hashes {
        assert!(store.find_session_by_refresh_hash(hash).await?.is_some());
    }
    let kids: Vec<String> = store
        .list_signing_keys()
        .await?
        .into_iter()
        .map(|key| key.kid)
        .collect();
    assert!(seeded.pruned_keys.iter().all(|kid| !kids.contains(kid)));
    assert!(seeded.kept_keys.iter().all(|kid| kids.contains(kid)));
    assert_eq!(
        kids.len(),
        seeded.kept_keys.len() + 1,
        "the signing key is kept"
    );
    // The service carries on: the signing key is published, sessions refresh.
    let next = app.refresh(&tokens.refresh_token).await?;
    app.verify(&next.access_token).await?;
    Ok(())
}

async fn a_feed_resumed_from_a_cursor_across_a_prune_still_reports_every_revocation_that_matters(
    backend: Backend,
) -> TestResult {
    let (app, seeded) = seeded_app(&backend, Timestamp::now()).await?;
    let mut events = app
        .keys
        .clone()
        .watch_revocations(WatchRevocationsRequest::default())
        .await?
        .into_inner();
    read_snapshot(&mut events).await?;
    let email = unique_email("resume");
    let (first, tokens) = app.user_with_tokens(&email).await?;
    logout(&app, &tokens.access_token).await?;
    let cursor = next_revocation(&mut events).await?.cursor;
    drop(events);
    let mut missed = Vec::new();
    for _ in 0..3 {
        let login = app.login(&email, pb::CredentialKind::Tokens).await?;
        logout(&app, &token_pair(&login)?.refresh_token).await?;
        missed.push(login.session_id);
    }

    let PruneOutcome::Pruned(pruned) = prune_at(&app, Timestamp::now()).await? else {
        return Err("the prune did not run".into());
    };
    assert_eq!(pruned.sessions, 3, "only the seeded old sessions");
    let store = app.database.store().await?;
    assert!(
        store
            .find_session(&seeded.pruned_sessions[0])
            .await?
            .is_none()
    );

    let mut resumed = app
        .keys
        .clone()
        .watch_revocations(WatchRevocationsRequest {
            after_cursor: cursor,
        })
        .await?
        .into_inner();
    let replayed = revoked_session_ids(&read_snapshot(&mut resumed).await?);
    for session_id in &missed {
        assert!(
            replayed.contains(session_id),
            "{session_id} missing from {replayed:?}"
        );
    }
    let mut fresh = app
        .keys
        .clone()
        .watch_revocations(WatchRevocationsRequest::default())
        .await?
        .into_inner();
    let everything = revoked_session_ids(&read_snapshot(&mut fresh).await?);
    assert!(everything.contains(&first.session_id));
    assert!(missed.iter().all(|id| everything.contains(id)));
    Ok(())
}

async fn the_background_pruner_deletes_old_rows_and_one_process_prunes_at_a_time(
    backend: Backend,
) -> TestResult {
    let now = Timestamp::now();
    let database = TestDatabase::create(&backend).await?;
    let seeded = seed(database.store().await?.as_ref(), now).await?;
    let store = database.store().await?;

    // While another process holds the lease (PostgreSQL), a run does nothing.
    if matches!(backend, Backend::Postgres(_)) {
        let retention = store.retention().ok_or("no retention")?;
        let lease = retention.try_lease_pruning().await?.ok_or("lease")?;
        let mut settings = test_settings(&database);
        short_retention(&mut settings);
        let outcome = pruner::prune(store.as_ref(), &settings.prune_rules(), now, false).await?;
        assert_eq!(outcome, PruneOutcome::Busy);
        assert!(retention.try_lease_pruning().await?.is_none());
        lease.release().await;
    }

    let mut settings = test_settings(&database);
    short_retention(&mut settings);
    settings.storage.prune_interval = Duration::from_secs(1);
    let _app = TestApp::start(database, settings).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut left = 0;
        for id in &seeded.pruned_sessions {
            left += usize::from(store.find_session(id).await?.is_some());
        }
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the background pruner left {left} old sessions"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &seeded.kept_sessions {
        assert!(store.find_session(id).await?.is_some(), "{id} pruned");
    }
    Ok(())
}

/// The live-sessions gauge's count (`Store::count_live_sessions`) reads the partial index of
/// unrevoked sessions, which holds every column it needs, never the table itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_sessions_count_reads_only_the_index_of_unrevoked_sessions() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, short_retention).await?;
    app.user_with_tokens(&unique_email("counted")).await?;
    let dir = app
        .database
        .env()
        .into_iter()
        .find(|(name, _)| *name == "AUTH_DATA_DIR")
        .map(|(_, dir)| dir)
        .ok_or("no data dir")?;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{dir}/auth.db")).await?;
    let rows = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT COUNT(*) AS live FROM sessions WHERE revoked_at IS NULL \
         AND expires_at > $1 AND last_seen_at + idle_timeout_ms > $1",
    )
    .bind(Timestamp::now().millis())
    .fetch_all(&pool)
    .await?;
    let detail: Vec<String> = rows
        .iter()
        .map(|row| sqlx::Row::try_get::<String, _>(row, "detail"))
        .collect::<Result<_, _>>()?;
    assert!(
        detail
            .iter()
            .any(|line| line.contains("USING COVERING INDEX sessions_unrevoked")),
        "{detail:?}"
    );
    Ok(())
}
