//! The auth-service replicas a run measures, and the PostgreSQL schema they share.

use auth_service::config::SecretString;
use tonic::transport::Channel;

use demo_services::{server::lazy_channel, stack::AuthReplica};

use super::{BenchError, BenchSettings, Mode, unix_millis};

/// The replicas of one run, and what to clean up after it.
pub(super) struct Deployment {
    pub(super) mode: Mode,
    pub(super) feed: AuthReplica,
    revoker: Option<AuthReplica>,
    postgres_url: Option<String>,
    _data_dir: tempfile::TempDir,
}

impl Deployment {
    pub(super) async fn start(settings: &BenchSettings) -> Result<Self, BenchError> {
        let data_dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
        let mut base = AuthReplica::sqlite_settings(data_dir.path());
        // One client address registers and logs in every user: no per-address throttle.
        base.login_rate_per_address = 0;
        base.refresh_rate_per_address = 0;
        let (Some(postgres), Some(redis)) = (&settings.postgres_url, &settings.redis_url) else {
            return Ok(Self {
                mode: Mode::Sqlite,
                feed: AuthReplica::start(base).await?,
                revoker: None,
                postgres_url: None,
                _data_dir: data_dir,
            });
        };
        let schema = format!("bench_{}", unix_millis());
        let admin = sqlx::PgPool::connect(postgres).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await?;
        admin.close().await;
        let separator = if postgres.contains('?') { '&' } else { '?' };
        let mut shared = base;
        shared.database_url = Some(SecretString::new(format!(
            "{postgres}{separator}options[search_path]={schema}"
        )));
        shared.redis_url = Some(SecretString::new(redis.clone()));
        // A first: it runs the migrations B then finds done.
        let feed = AuthReplica::start(shared.clone()).await?;
        let revoker = AuthReplica::start(shared).await?;
        Ok(Self {
            mode: Mode::PostgresRedis { schema },
            feed,
            revoker: Some(revoker),
            postgres_url: Some(postgres.clone()),
            _data_dir: data_dir,
        })
    }

    pub(super) fn revoker_channel(&self) -> Channel {
        lazy_channel(&self.revoker.as_ref().unwrap_or(&self.feed).url)
    }

    pub(super) async fn stop(self) {
        if let Some(revoker) = self.revoker {
            revoker.stop().await;
        }
        self.feed.stop().await;
        if let (Mode::PostgresRedis { schema }, Some(url)) = (&self.mode, &self.postgres_url)
            && let Err(error) = drop_schema(url, schema).await
        {
            eprintln!("revocation-bench: could not drop schema {schema}: {error}");
        }
    }
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), sqlx::Error> {
    let admin = sqlx::PgPool::connect(url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}
