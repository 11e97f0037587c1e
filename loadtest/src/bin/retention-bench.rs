//! `retention-bench`: rows and bytes per table after a simulated week of refreshes, without and
//! with the pruner (BENCHMARKS.md, "Data that stays bounded").
//!
//! The writes go through the service's own store (`auth_service::store`, the SQL the server runs)
//! with simulated instants, not through the network, so a week takes minutes: sessions start at
//! a steady rate, each refreshes every 15 minutes (the access-token lifetime) for 1 to 63 rounds
//! (8 hours on average), then half log out (revoked, one change-log row) and half are abandoned
//! (they end at their idle timeout, the refresh-token lifetime). With `--prune`, the pruner runs
//! every simulated hour with the given retentions. The workload is the same in every run (drawn
//! from counters, not the clock).

use std::{sync::Arc, time::Duration};

use auth_service::{
    domain::{
        Timestamp,
        model::SessionKind,
        ports::{NewSession, RefreshRotation, RevokeReason, Store, UserRecord},
        retention::RetentionPolicy,
    },
    engine::pruner::{self, PruneRules},
};
use clap::Parser;
use loadtest::{RunError, rng::mix};

#[derive(Debug, Parser)]
#[command(about = "Rows and bytes per table after a simulated week of refreshes")]
struct Args {
    /// Refreshes to simulate.
    #[arg(long, default_value_t = 1_000_000)]
    refreshes: u64,
    /// The simulated span the refreshes are spread over.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    span: Duration,
    /// PostgreSQL base URL (a fresh schema is made); unset: SQLite in a directory under /dev/shm.
    #[arg(long)]
    database_url: Option<String>,
    /// Run the pruner every simulated hour.
    #[arg(long)]
    prune: bool,
    /// AUTH_RETAIN_ENDED_SESSIONS of the simulated service.
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    retain_ended_sessions: Duration,
    /// AUTH_RETAIN_CHANGE_LOG of the simulated service.
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    retain_change_log: Duration,
    /// AUTH_REFRESH_TOKEN_TTL (a token session's idle timeout) of the simulated service.
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    refresh_token_ttl: Duration,
    /// Store calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

const TICK: Duration = Duration::from_secs(15 * 60);
const MEAN_ROUNDS: u64 = 32;
const USERS: usize = 1_000;
const TABLES: [&str; 5] = [
    "users",
    "sessions",
    "refresh_tokens",
    "session_changes",
    "signing_keys",
];

struct Active {
    id: String,
    user: usize,
    head: Vec<u8>,
    rounds_left: u64,
    serial: u64,
}

fn hash(serial: u64, round: u64) -> Vec<u8> {
    (0..4u64)
        .flat_map(|part| mix(serial ^ (round << 40) ^ (part << 60)).to_le_bytes())
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), RunError> {
    let args = Args::parse();
    let dir = tempfile::Builder::new()
        .prefix("retention-bench")
        .tempdir_in("/dev/shm")?;
    let (url, raw_url) = match &args.database_url {
        Some(base) => {
            let schema = format!("retention_{}", std::process::id());
            let admin = sqlx::PgPool::connect(base).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin)
                .await?;
            let separator = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{separator}options[search_path]={schema}");
            // Throughput, not durability, is what a simulation needs from the database.
            (format!("{url}&options[synchronous_commit]=off"), url)
        }
        None => {
            let url = format!("sqlite:{}/auth.db", dir.path().display());
            (url.clone(), url)
        }
    };
    let store = auth_service::store::connect(Some(&url), dir.path()).await?;
    // A simulated hour passes in a fraction of a second, far too fast for autovacuum: after each
    // prune, vacuum as autovacuum would in an hour, so freed space is reused (PostgreSQL).
    let vacuum = match &args.database_url {
        Some(_) => Some(sqlx::PgPool::connect(&raw_url).await?),
        None => None,
    };
    let start = Timestamp::from_millis(1_800_000_000_000);
    let keys = auth_service::engine::keys::generate_key(start, start)?;
    store.insert_signing_key(&keys).await?;
    let mut users = Vec::with_capacity(USERS);
    for n in 0..USERS {
        let id = format!("user-{n}");
        store
            .insert_user(&UserRecord {
                id: id.clone(),
                email: format!("{id}@bench.test"),
                email_key: format!("{id}@bench.test"),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$YmVuY2g$YmVuY2g".into(),
                roles: String::new(),
                created_at: start,
                suspended_at: None,
            })
            .await?;
        users.push(id);
    }
    let rules = PruneRules {
        policy: RetentionPolicy {
            ended_sessions: args.retain_ended_sessions,
            change_log: args.retain_change_log,
            retired_keys: Duration::from_secs(7 * 86_400),
        },
        batch_size: 1000,
        pause: Duration::ZERO,
    };
    let ticks = (args.span.as_secs() / TICK.as_secs()).max(1);
    let per_tick = args.refreshes as f64 / (MEAN_ROUNDS * ticks) as f64;
    let (mut refreshes, mut serial, mut started_owed) = (0u64, 0u64, 0f64);
    let mut active: Vec<Active> = Vec::new();
    let mut tick = 0u64;
    let began = std::time::Instant::now();
    while refreshes < args.refreshes {
        let now = start.plus(TICK * u32::try_from(tick)?);
        started_owed += per_tick;
        while started_owed >= 1.0 && tick < ticks {
            started_owed -= 1.0;
            serial += 1;
            let session = Active {
                id: format!("session-{serial}"),
                user: (mix(serial) % USERS as u64) as usize,
                head: hash(serial, 0),
                rounds_left: 1 + mix(serial ^ 0xA5A5) % (2 * MEAN_ROUNDS - 1),
                serial,
            };
            store
                .insert_session(&new_session(&session, &users, now, &args))
                .await?;
            active.push(session);
        }
        let due = active.len().min((args.refreshes - refreshes) as usize);
        let batch: Vec<Active> = active.drain(..due).collect();
        refreshes += batch.len() as u64;
        active.extend(refresh_all(&store, batch, now, &args).await?);
        tick += 1;
        if args.prune && tick.is_multiple_of(4) {
            pruner::prune(store.as_ref(), &rules, now, false).await?;
            if let Some(pool) = &vacuum {
                sqlx::query("VACUUM sessions, refresh_tokens, session_changes")
                    .execute(pool)
                    .await?;
            }
        }
        if tick.is_multiple_of(96) {
            eprintln!(
                "day {}: {refreshes} refreshes, {:?}",
                tick / 96,
                began.elapsed()
            );
        }
    }
    let end = start.plus(TICK * u32::try_from(tick)?);
    if args.prune {
        pruner::prune(store.as_ref(), &rules, end, false).await?;
    }
    report(&args, &raw_url, &store, end, tick, began.elapsed()).await?;
    if let Some(base) = &args.database_url {
        let admin = sqlx::PgPool::connect(base).await?;
        let schema = format!("retention_{}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&admin)
            .await?;
    }
    Ok(())
}

fn new_session(session: &Active, users: &[String], now: Timestamp, args: &Args) -> NewSession {
    NewSession {
        id: session.id.clone(),
        user_id: users[session.user].clone(),
        kind: SessionKind::Tokens,
        session_token_hash: None,
        refresh_token_hash: Some(session.head.clone()),
        refresh_expires_at: Some(now.plus(args.refresh_token_ttl)),
        created_at: now,
        idle_timeout_ms: args.refresh_token_ttl.as_millis() as i64,
        expires_at: now.plus(Duration::from_secs(30 * 86_400)),
        user_agent: "retention-bench".into(),
        peer_address: "127.0.0.1".into(),
        management: false,
    }
}

/// One refresh of each session (in `concurrency` lanes); returns those still active.
async fn refresh_all(
    store: &Arc<dyn Store>,
    sessions: Vec<Active>,
    now: Timestamp,
    args: &Args,
) -> Result<Vec<Active>, RunError> {
    let lanes = args.concurrency.max(1);
    let mut lane_work: Vec<Vec<Active>> = (0..lanes).map(|_| Vec::new()).collect();
    for (n, session) in sessions.into_iter().enumerate() {
        lane_work[n % lanes].push(session);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for work in lane_work {
        let store = store.clone();
        let ttl = args.refresh_token_ttl;
        tasks.spawn(async move {
            let mut still = Vec::new();
            for mut session in work {
                session.rounds_left -= 1;
                let next = hash(session.serial, 2 * MEAN_ROUNDS - session.rounds_left);
                let rotated = store
                    .rotate_refresh(&RefreshRotation {
                        expected_current: session.head.clone(),
                        new_current: next.clone(),
                        new_previous: session.head.clone(),
                        rotated_at: now,
                        refresh_expires_at: now.plus(ttl),
                        now,
                    })
                    .await?;
                if rotated.is_none() {
                    return Err::<_, RunError>(format!("{} did not rotate", session.id).into());
                }
                session.head = next;
                if session.rounds_left > 0 {
                    still.push(session);
                } else if mix(session.serial ^ 0x5A5A).is_multiple_of(2) {
                    store
                        .revoke_session(&session.id, RevokeReason::Logout, now)
                        .await?;
                }
            }
            Ok(still)
        });
    }
    let mut still = Vec::new();
    while let Some(lane) = tasks.join_next().await {
        still.extend(lane??);
    }
    Ok(still)
}

async fn report(
    args: &Args,
    raw_url: &str,
    store: &Arc<dyn Store>,
    end: Timestamp,
    ticks: u64,
    took: Duration,
) -> Result<(), RunError> {
    let counted = std::time::Instant::now();
    let live = store.count_live_sessions(end).await?;
    let count_took = counted.elapsed();
    let mut rows = Vec::new();
    let mut bytes = Vec::new();
    if raw_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(raw_url).await?;
        for table in TABLES {
            rows.push(
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table}"
                )))
                .fetch_one(&pool)
                .await?,
            );
            let size: Option<i64> = sqlx::query_scalar(
                "SELECT SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name \
                 WHERE m.tbl_name = $1",
            )
            .bind(table)
            .fetch_one(&pool)
            .await?;
            bytes.push(size.unwrap_or(0));
        }
    } else {
        let pool = sqlx::PgPool::connect(raw_url).await?;
        for table in TABLES {
            // What autovacuum would do in a running service: dead rows' space becomes reusable.
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
                .execute(&pool)
                .await?;
            rows.push(
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table}"
                )))
                .fetch_one(&pool)
                .await?,
            );
            let size: i64 = sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
                .bind(table)
                .fetch_one(&pool)
                .await?;
            bytes.push(size);
        }
    }
    let backend = if raw_url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let pruning = if args.prune {
        format!(
            "pruned hourly (ended sessions {}, change log {})",
            humantime::format_duration(args.retain_ended_sessions),
            humantime::format_duration(args.retain_change_log)
        )
    } else {
        "no pruning".to_owned()
    };
    let cells: Vec<String> = rows
        .iter()
        .zip(&bytes)
        .map(|(rows, bytes)| format!("{rows} / {:.1} MiB", *bytes as f64 / 1_048_576.0))
        .collect();
    println!(
        "| {backend} | {pruning} | {} | {:.1} MiB | {live} live, counted in {:.1} ms |",
        cells[1..].join(" | "),
        bytes.iter().sum::<i64>() as f64 / 1_048_576.0,
        count_took.as_secs_f64() * 1000.0
    );
    eprintln!(
        "{} refreshes over {:.1} simulated days in {took:?}",
        args.refreshes,
        (ticks * TICK.as_secs()) as f64 / 86_400.0
    );
    Ok(())
}
