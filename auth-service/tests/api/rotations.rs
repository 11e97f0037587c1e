//! The refresh-rotation writes of the store (`store/sql/rotations.rs`, the one-call batches in
//! `store/bulk_rotations.rs`), driven directly so that many rotations arrive
//! together and share group commits: each keeps its own compare-and-set verdict, a race on one
//! token has one winner, and a rotation written twice (its commit landed but the confirmation
//! was lost) is not reported as a lost race, and a session that is no longer live never rotates
//! (a refresh's happy path is the rotation alone). Refresh reads a session and its owner's standing in
//! one statement, found by any refresh token the session ever issued. SQLite's write-ahead log
//! is checkpointed by a task of its own, never inside a rotation's commit.

use std::{sync::Arc, time::Duration};

use auth_service::domain::{
    Timestamp,
    model::SessionKind,
    ports::{NewSession, OwnerStanding, RefreshRotation, RevokeReason, Store, UserRecord},
};
use sqlx::Row as _;

use crate::helpers::{Backend, TestDatabase, TestResult, on_both_backends, unique_email};

on_both_backends!(
    concurrent_rotations_of_many_sessions_each_keep_their_own_verdict,
    a_rotation_written_again_after_it_landed_still_wins,
    a_rotation_refuses_a_session_that_is_no_longer_live,
    any_token_of_a_session_finds_it_with_its_owners_standing,
);

type Error = Box<dyn std::error::Error + Send + Sync>;

const SESSIONS: usize = 48;

fn token(session: &str, n: usize) -> Vec<u8> {
    format!("{session}/{n}").into_bytes()
}

fn rotation(session: &str, from: usize, to: usize, now: Timestamp) -> RefreshRotation {
    RefreshRotation {
        expected_current: token(session, from),
        new_current: token(session, to),
        new_previous: token(session, from),
        rotated_at: now,
        refresh_expires_at: now.plus(std::time::Duration::from_secs(3600)),
        now,
    }
}

/// A user with `count` token sessions, each at refresh token `token(id, 0)`.
async fn sessions(store: &dyn Store, count: usize, now: Timestamp) -> Result<Vec<String>, Error> {
    Ok(owned_sessions(store, count, now).await?.1)
}

/// [`sessions`], with their owner's id.
async fn owned_sessions(
    store: &dyn Store,
    count: usize,
    now: Timestamp,
) -> Result<(String, Vec<String>), Error> {
    let email = unique_email("rotations");
    let user_id = auth_service::domain::opaque_token::new_id()?;
    store
        .insert_user(&UserRecord {
            id: user_id.clone(),
            email: email.clone(),
            email_key: email.to_lowercase(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2VlZA$c2VlZA".into(),
            roles: String::new(),
            created_at: now,
            suspended_at: None,
        })
        .await?;
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let id = auth_service::domain::opaque_token::new_id()?;
        store
            .insert_session(&NewSession {
                id: id.clone(),
                user_id: user_id.clone(),
                kind: SessionKind::Tokens,
                session_token_hash: None,
                refresh_token_hash: Some(token(&id, 0)),
                refresh_expires_at: Some(now.plus(std::time::Duration::from_secs(3600))),
                created_at: now,
                idle_timeout_ms: 3_600_000,
                expires_at: now.plus(std::time::Duration::from_secs(86_400)),
                user_agent: "rotations".into(),
                peer_address: "127.0.0.1".into(),
                management: false,
            })
            .await?;
        ids.push(id);
    }
    Ok((user_id, ids))
}

async fn current_token(store: &dyn Store, session: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(store
        .find_session(session)
        .await?
        .and_then(|record| record.refresh_current_hash))
}

async fn concurrent_rotations_of_many_sessions_each_keep_their_own_verdict(
    backend: Backend,
) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    let store: Arc<dyn Store> = database.store().await?;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let ids = sessions(store.as_ref(), SESSIONS, now).await?;

    // Every session at once: its own valid rotation, a stale one (expecting a token it never
    // had), and, for the first session, seven more racers presenting the same token.
    let mut attempts = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        attempts.push((index, "valid", rotation(id, 0, 1, now)));
        attempts.push((index, "stale", rotation(id, 7, 8, now)));
    }
    for racer in 0..7 {
        attempts.push((0, "racer", rotation(&ids[0], 0, 100 + racer, now)));
    }
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(index, kind, rotation)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let won = store.rotate_refresh(&rotation).await;
                (index, kind, rotation.new_current, won)
            })
        })
        .collect();
    let mut winners = vec![Vec::new(); SESSIONS];
    for task in tasks {
        let (index, kind, new_current, won) = task.await?;
        if kind == "stale" {
            assert!(won?.is_none(), "a stale rotation of session {index} won");
        } else if won?.is_some() {
            winners[index].push(new_current);
        }
    }
    for (index, id) in ids.iter().enumerate() {
        assert_eq!(
            winners[index].len(),
            1,
            "session {index}: {:?}",
            winners[index]
        );
        assert_eq!(
            current_token(store.as_ref(), id).await?.as_ref(),
            winners[index].first(),
            "session {index} holds the token of the rotation that won"
        );
        if index > 0 {
            assert_eq!(winners[index][0], token(id, 1));
        }
    }
    Ok(())
}

async fn a_rotation_written_again_after_it_landed_still_wins(backend: Backend) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    let store = database.store().await?;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let ids = sessions(store.as_ref(), 1, now).await?;
    let id = &ids[0];

    let first = rotation(id, 0, 1, now);
    assert!(store.rotate_refresh(&first).await?.is_some());
    assert!(
        store.rotate_refresh(&first).await?.is_some(),
        "the same rotation again is its own result, not a lost race"
    );
    assert_eq!(current_token(store.as_ref(), id).await?, Some(token(id, 1)));
    // Another rotation from the replaced token still loses.
    assert!(
        store
            .rotate_refresh(&rotation(id, 0, 2, now))
            .await?
            .is_none()
    );
    assert_eq!(current_token(store.as_ref(), id).await?, Some(token(id, 1)));
    Ok(())
}

/// The rotation is the whole of a refresh's happy path (no read before it), so it must refuse
/// what `SessionRecord::ensure_live` refuses: a revoked session, and one at or past its idle or
/// absolute end. A winner comes back as the rotation left it, with its owner.
async fn a_rotation_refuses_a_session_that_is_no_longer_live(backend: Backend) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    let store = database.store().await?;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let later = |ms: u64| now.plus(Duration::from_millis(ms));
    // Idle timeout one hour, absolute end a day after `now`.
    let (user_id, ids) = owned_sessions(store.as_ref(), 3, now).await?;
    let idle_end = later(3_600_000);

    let idle = &ids[0];
    assert!(
        store
            .rotate_refresh(&rotation(idle, 0, 1, idle_end))
            .await?
            .is_none(),
        "a session idle for its whole idle timeout rotated"
    );
    assert_eq!(
        current_token(store.as_ref(), idle).await?,
        Some(token(idle, 0))
    );
    let last_moment = later(3_599_999);
    let won = store
        .rotate_refresh(&rotation(idle, 0, 1, last_moment))
        .await?
        .ok_or("a live session did not rotate")?;
    assert_eq!(&won.id, idle);
    assert_eq!(won.user_id, user_id);
    assert_eq!(won.owner, OwnerStanding::Active);
    assert_eq!(won.refresh_current_hash, Some(token(idle, 1)));
    assert_eq!(won.refresh_previous_hash, Some(token(idle, 0)));
    assert_eq!(won.last_seen_at, last_moment, "the rotation is activity");
    assert_eq!(
        won.refresh_expires_at,
        Some(last_moment.plus(Duration::from_secs(3600)))
    );

    let revoked = &ids[1];
    store
        .revoke_session(revoked, RevokeReason::Revoked, now)
        .await?
        .ok_or("the session was not revoked")?;
    assert!(
        store
            .rotate_refresh(&rotation(revoked, 0, 1, now))
            .await?
            .is_none()
    );

    // Kept alive by rotations every 50 minutes until its absolute end, a day after `now`.
    let ending = &ids[2];
    let mut at = now;
    let mut n = 0;
    while at.plus(Duration::from_secs(3000)) < later(86_400_000) {
        at = at.plus(Duration::from_secs(3000));
        let won = store
            .rotate_refresh(&rotation(ending, n, n + 1, at))
            .await?
            .ok_or("a live session did not rotate")?;
        n += 1;
        // A refresh token never outlives its session.
        let expected_expiry = at.plus(Duration::from_secs(3600)).min(later(86_400_000));
        assert_eq!(won.refresh_expires_at, Some(expected_expiry));
    }
    assert!(
        store
            .rotate_refresh(&rotation(ending, n, n + 1, later(86_400_000)))
            .await?
            .is_none(),
        "a session rotated at its absolute end"
    );
    Ok(())
}

async fn any_token_of_a_session_finds_it_with_its_owners_standing(backend: Backend) -> TestResult {
    let database = TestDatabase::create(&backend).await?;
    let store = database.store().await?;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let (user_id, ids) = owned_sessions(store.as_ref(), 2, now).await?;
    let id = &ids[0];
    assert!(
        store
            .rotate_refresh(&rotation(id, 0, 1, now))
            .await?
            .is_some()
    );
    assert!(
        store
            .rotate_refresh(&rotation(id, 1, 2, now))
            .await?
            .is_some()
    );

    // The head and every spent token find the session (reuse detection needs the spent ones).
    for n in 0..3 {
        let found = store.find_session_by_refresh_hash(&token(id, n)).await?;
        let found = found.ok_or("a token the session issued finds no session")?;
        assert_eq!(&found.id, id);
        assert_eq!(found.refresh_current_hash, Some(token(id, 2)));
        assert_eq!(found.owner, OwnerStanding::Active);
    }
    assert!(
        store
            .find_session_by_refresh_hash(b"never issued")
            .await?
            .is_none()
    );

    assert!(store.suspend_user(&user_id, now).await?);
    let found = store.find_session_by_refresh_hash(&token(id, 2)).await?;
    assert_eq!(found.map(|s| s.owner), Some(OwnerStanding::Suspended));
    assert!(store.delete_user(&user_id, now).await?);
    let found = store
        .find_session_by_refresh_hash(&token(&ids[1], 0))
        .await?;
    assert_eq!(found.map(|s| s.owner), Some(OwnerStanding::Deleted));
    Ok(())
}

/// The log is copied back into the database file by the store's own task: shortly after a few
/// rotations the database file alone (no log beside it) holds them, though the log is far below
/// the 1,000 pages at which one of the commits would have copied it.
#[tokio::test]
async fn sqlite_checkpoints_its_log_outside_the_commits() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = auth_service::store::SqliteStore::open_in(dir.path()).await?;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let ids = sessions(&store, 8, now).await?;
    for id in &ids {
        assert!(
            store
                .rotate_refresh(&rotation(id, 0, 1, now))
                .await?
                .is_some()
        );
    }
    let copies = tempfile::tempdir()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for attempt in 0.. {
        let copy = copies.path().join(format!("copy-{attempt}.db"));
        std::fs::copy(dir.path().join("auth.db"), &copy)?;
        if database_file_holds(&copy, &ids).await.unwrap_or(false) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(
        "after 5 s the database file still lacks the rotations: the log was not checkpointed"
            .into(),
    )
}

/// Whether the database file `copy` (without its log) has every session at token 1.
async fn database_file_holds(copy: &std::path::Path, ids: &[String]) -> Result<bool, Error> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(copy);
    let mut connection = sqlx::ConnectOptions::connect(&options).await?;
    for id in ids {
        let row = sqlx::query("SELECT refresh_current_hash FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_one(&mut connection)
            .await?;
        if row.try_get::<Vec<u8>, _>(0)? != token(id, 1) {
            return Ok(false);
        }
    }
    Ok(true)
}
