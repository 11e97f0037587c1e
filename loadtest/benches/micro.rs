//! Micro-benchmarks of the costs behind every call: access-token sign and verify (and the raw
//! Ed25519 verify they build on; 32 concurrent first-seen checks, batched), a `LocalVerifier`
//! check on first sight and on repeat, a session-token and an access-token check in the domain
//! (store lookup included), a refresh rotation, an argon2id hash.
//! `cargo bench -p loadtest --bench micro`; BENCHMARKS.md has results.
//! The domain benchmarks run on SQLite, and on PostgreSQL too when `TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{hint::black_box, sync::Arc, time::Duration};

use auth_api::{
    LocalVerifier, LocalVerifierConfig,
    access_token::{self, AccessClaims, Audience, TokenRules},
    v1::{self as pb, auth_service_client::AuthServiceClient, login_response::Credential},
};
use auth_service::{
    app::{Application, Components},
    config::{SecretString, SessionCache, Settings},
    domain::{
        AuthCore, Timestamp,
        model::{ClientInfo, Credential as Issued, SessionKind},
    },
    engine::{
        hashing::{HashingParams, PasswordHasher},
        signatures::{PublicKey, SignatureChecks},
    },
};
use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, EncodingKey};
use tokio::runtime::Runtime;

const PASSWORD: &str = "benchmark password 1";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn unix_now() -> i64 {
    Timestamp::now().millis() / 1000
}

fn access_tokens(c: &mut Criterion) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let encoding = EncodingKey::from_ed_der(pkcs8.as_ref());
    let decoding = DecodingKey::from_ed_der(pair.public_key().as_ref());
    let now = unix_now();
    let claims = AccessClaims {
        iss: "auth".into(),
        sub: "Ab3dEfGh1jKlMnOp".into(),
        aud: "api".into(),
        sid: "Qr5tUvWx7zAbCdEf".into(),
        iat: now,
        exp: now + 900,
        jti: "aBcDeFgHiJkL".into(),
        roles: vec!["user".into()],
        nbf: None,
        auth_time: None,
        exchanged: None,
        service: None,
        act: None,
        email_verified: None,
    };
    let rules = TokenRules {
        issuer: "auth".into(),
        leeway: Duration::from_secs(5),
    };
    let mut group = c.benchmark_group("access_token");
    group.bench_function("sign", |b| {
        b.iter(|| access_token::sign(black_box(&claims), "k1", &encoding).unwrap())
    });
    let token = access_token::sign(&claims, "k1", &encoding).unwrap();
    group.bench_function("verify (header, Ed25519, claims)", |b| {
        b.iter(|| {
            access_token::verify(
                black_box(&token),
                &decoding,
                &rules,
                Audience::Exactly("api"),
                now,
            )
            .unwrap()
        })
    });
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let public = UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref().to_vec());
    group.bench_function("raw Ed25519 verify (aws-lc-rs)", |b| {
        b.iter(|| {
            public
                .verify(black_box(signing_input.as_bytes()), &signature)
                .unwrap()
        })
    });
    // What the service does with first-seen tokens that arrive together (engine/signatures.rs):
    // 32 concurrent checks make one lone check plus one batch of 31.
    let checks = SignatureChecks::new(1);
    let key = Arc::new(PublicKey::from_bytes(pair.public_key().as_ref()).unwrap());
    let messages: Vec<(Vec<u8>, [u8; 64])> = (0..32)
        .map(|index| {
            let message = format!("{signing_input}{index}").into_bytes();
            let signature = pair.sign(&message).as_ref().try_into().unwrap();
            (message, signature)
        })
        .collect();
    let messages = Arc::new(messages);
    let runtime = runtime();
    group.bench_function("32 concurrent first-seen checks (SignatureChecks)", |b| {
        b.to_async(&runtime).iter(|| {
            let checks = Arc::clone(&checks);
            let key = Arc::clone(&key);
            let messages = Arc::clone(&messages);
            async move {
                let calls: Vec<_> = (0..messages.len())
                    .map(|index| {
                        let (checks, key, messages) =
                            (Arc::clone(&checks), Arc::clone(&key), Arc::clone(&messages));
                        tokio::spawn(async move {
                            let (message, signature) = &messages[index];
                            checks.verify(message, signature, &key).await
                        })
                    })
                    .collect();
                for call in calls {
                    assert!(call.await.unwrap());
                }
            }
        })
    });
    group.finish();
}

/// A real server on SQLite in a temporary directory, and a client of it.
struct Served {
    channel: tonic::transport::Channel,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

fn settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings::defaults();
    settings.listen_addr = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = dir.to_path_buf();
    settings.login_rate_per_address = 0;
    settings.refresh_rate_per_address = 0;
    settings.max_sessions_per_user = 100_000;
    settings
}

async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(settings(dir.path())).await.unwrap();
    let addr = app.local_addr();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stop.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Served {
        channel,
        _shutdown: shutdown,
        _dir: dir,
    }
}

/// `count` distinct access tokens of one session: a login, then a Refresh chain.
async fn mint(channel: &tonic::transport::Channel, count: usize) -> Vec<String> {
    let mut auth = AuthServiceClient::new(channel.clone());
    let email = format!("bench-{}@example.com", Timestamp::now().millis());
    auth.register(pb::RegisterRequest {
        email: email.clone(),
        password: PASSWORD.into(),
    })
    .await
    .unwrap();
    let login = auth
        .login(pb::LoginRequest {
            email,
            password: PASSWORD.into(),
            kind: pb::CredentialKind::Tokens as i32,
            management: false,
        })
        .await
        .unwrap()
        .into_inner();
    let Some(Credential::Tokens(mut pair)) = login.credential else {
        panic!("no token pair");
    };
    let mut tokens = vec![pair.access_token.clone()];
    while tokens.len() < count {
        pair = auth
            .refresh(pb::RefreshRequest {
                refresh_token: pair.refresh_token,
            })
            .await
            .unwrap()
            .into_inner()
            .tokens
            .unwrap();
        tokens.push(pair.access_token.clone());
    }
    tokens
}

fn local_verifier(c: &mut Criterion) {
    let runtime = runtime();
    let (served, tokens, first_sight, cached) = runtime.block_on(async {
        let served = serve().await;
        let tokens = mint(&served.channel, 2_000).await;
        let mut no_cache = LocalVerifierConfig::new("api");
        no_cache.verified_cache_capacity = 0;
        let first_sight = LocalVerifier::connect(served.channel.clone(), no_cache)
            .await
            .unwrap();
        let cached =
            LocalVerifier::connect(served.channel.clone(), LocalVerifierConfig::new("api"))
                .await
                .unwrap();
        (served, tokens, first_sight, cached)
    });
    let mut group = c.benchmark_group("local_verifier");
    // Without the cache every check is a first sight: header, key, signature, claims, revocation.
    group.bench_function("first sight (2000 distinct tokens)", |b| {
        let mut next = 0;
        b.to_async(&runtime).iter(|| {
            next = (next + 1) % tokens.len();
            let token = &tokens[next];
            let verifier = &first_sight;
            async move { verifier.verify_token(token).await.unwrap() }
        })
    });
    runtime.block_on(cached.verify_token(&tokens[0])).unwrap();
    group.bench_function("repeat (a token seen before)", |b| {
        b.to_async(&runtime)
            .iter(|| async { cached.verify_token(&tokens[0]).await.unwrap() })
    });
    group.finish();
    drop(served);
}

struct Domain {
    core: Arc<AuthCore>,
    session_token: String,
    access_token: String,
    refresh_token: std::sync::Mutex<String>,
}

async fn domain(
    database_url: Option<String>,
    session_cache: SessionCache,
    dir: &std::path::Path,
) -> Domain {
    let mut settings = settings(dir);
    settings.database_url = database_url.map(SecretString::new);
    settings.session_cache = session_cache;
    let components = Components::open(&settings).await.unwrap();
    let core = components.core;
    let email = format!("bench-{}@example.com", Timestamp::now().millis());
    core.register(&email, PASSWORD.into(), Timestamp::now())
        .await
        .unwrap();
    let login = |kind: SessionKind| {
        let core = core.clone();
        let email = email.clone();
        async move {
            core.login(
                &email,
                PASSWORD.into(),
                kind.into(),
                ClientInfo::default(),
                Timestamp::now(),
            )
            .await
            .unwrap()
            .credential
        }
    };
    let Issued::Session {
        token: session_token,
        ..
    } = login(SessionKind::Session).await
    else {
        panic!("no session token");
    };
    let Issued::Tokens(tokens) = login(SessionKind::Tokens).await else {
        panic!("no token pair");
    };
    Domain {
        core,
        session_token,
        access_token: tokens.access_token,
        refresh_token: std::sync::Mutex::new(tokens.refresh_token),
    }
}

fn domain_checks(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    // The session cache off: every check reads the store, as on a replica that cannot hear Redis.
    let mut backends = vec![
        ("sqlite", None, SessionCache::Off),
        ("sqlite, session cache", None, SessionCache::On),
    ];
    let postgres = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| (url, format!("bench_{}", Timestamp::now().millis())));
    if let Some((url, schema)) = &postgres {
        runtime.block_on(schema_statement(url, &format!("CREATE SCHEMA {schema}")));
        let separator = if url.contains('?') { '&' } else { '?' };
        backends.push((
            "postgres",
            Some(format!("{url}{separator}options[search_path]={schema}")),
            SessionCache::Off,
        ));
    }
    for (backend, url, session_cache) in backends {
        let domain = runtime.block_on(domain(url, session_cache, dir.path()));
        let mut group = c.benchmark_group(format!("domain ({backend})"));
        group.bench_function("verify a session token (lookup by SHA-256)", |b| {
            b.to_async(&runtime).iter(|| async {
                domain
                    .core
                    .verify(&domain.session_token, None, Timestamp::now())
                    .await
                    .unwrap()
            })
        });
        group.bench_function("verify an access token (signature + session row)", |b| {
            b.to_async(&runtime).iter(|| async {
                domain
                    .core
                    .verify(&domain.access_token, None, Timestamp::now())
                    .await
                    .unwrap()
            })
        });
        group.bench_function("refresh rotation", |b| {
            b.to_async(&runtime).iter(|| async {
                let current = domain.refresh_token.lock().unwrap().clone();
                let issued = domain
                    .core
                    .refresh(&current, Timestamp::now())
                    .await
                    .unwrap();
                *domain.refresh_token.lock().unwrap() = issued.refresh_token;
            })
        });
        group.finish();
    }
    if let Some((url, schema)) = &postgres {
        runtime.block_on(schema_statement(
            url,
            &format!("DROP SCHEMA {schema} CASCADE"),
        ));
    }
}

async fn schema_statement(url: &str, statement: &str) {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

fn argon2(c: &mut Criterion) {
    let runtime = runtime();
    let hasher = runtime
        .block_on(PasswordHasher::new(HashingParams::default()))
        .unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.bench_function("hash (m=19 MiB, t=2, p=1)", |b| {
        b.to_async(&runtime)
            .iter(|| async { hasher.hash(PASSWORD.into()).await.unwrap() })
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = quick();
    targets = access_tokens, local_verifier, domain_checks, argon2
}
criterion_main!(benches);
