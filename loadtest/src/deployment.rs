//! One run's deployment: a private Redis, a fresh PostgreSQL schema, the replicas, a
//! `LocalVerifier` fed by the first replica through a [`CuttableProxy`], and the workload.

use std::{path::PathBuf, sync::Arc, time::Duration};

use auth_api::{LocalVerifier, LocalVerifierConfig, v1::auth_service_client::AuthServiceClient};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    RunError,
    cluster::{RedisServer, Replica, Schema, lazy_channel, replica_env},
    proxy::CuttableProxy,
    stats::Recorder,
    workload::{Target, Workload, WorkloadConfig, register_users},
};

#[derive(Clone, Debug)]
pub struct DeploymentConfig {
    pub auth_service_binary: PathBuf,
    pub postgres_url: String,
    pub redis_server_binary: String,
    pub replicas: usize,
    pub users: usize,
    pub sessions: usize,
    /// The verifier's `max_feed_outage`: how long it answers from its last known revocations
    /// once the feed is gone.
    pub max_feed_outage: Duration,
    pub workload: WorkloadConfig,
    /// Where the replicas' and Redis's logs go; a temporary directory when `None`.
    pub log_dir: Option<PathBuf>,
}

pub struct Deployment {
    pub redis: RedisServer,
    pub replicas: Vec<Replica>,
    pub feed_proxy: CuttableProxy,
    pub workload: Arc<Workload>,
    pub recorder: Arc<Recorder>,
    pub log_dir: PathBuf,
    schema: Option<Schema>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _scratch: tempfile::TempDir,
}

impl Deployment {
    pub async fn start(config: &DeploymentConfig) -> Result<Self, RunError> {
        let scratch = tempfile::tempdir()?;
        let log_dir = config
            .log_dir
            .clone()
            .unwrap_or_else(|| scratch.path().join("logs"));
        std::fs::create_dir_all(&log_dir)?;
        let run_id = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
        );
        let recorder = Arc::new(Recorder::new());
        let redis = RedisServer::start(&config.redis_server_binary, &log_dir).await?;
        let schema = Schema::create(&config.postgres_url, &run_id).await?;
        let env = replica_env(&schema.url(), &redis.url(), scratch.path(), &run_id);
        let mut replicas = Vec::new();
        for index in 0..config.replicas.max(1) {
            let name = format!("replica-{}", (b'a' + index as u8) as char);
            let mut replica =
                Replica::new(&name, &config.auth_service_binary, env.clone(), &log_dir)?;
            // One at a time: the first runs the migrations, the others find them done.
            replica.start().await?;
            replicas.push(replica);
        }
        let targets = replicas
            .iter()
            .map(|replica| {
                Ok(Target {
                    name: replica.name.clone(),
                    auth: AuthServiceClient::new(lazy_channel(&replica.url())?),
                })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        let feed_proxy = CuttableProxy::start(format!("127.0.0.1:{}", replicas[0].port)).await?;
        let mut verifier_config = LocalVerifierConfig::new("api");
        verifier_config.max_feed_outage = config.max_feed_outage;
        verifier_config.feed_silence_limit = Duration::from_secs(1);
        let verifier = LocalVerifier::connect(
            lazy_channel(&format!("http://{}", feed_proxy.addr))?,
            verifier_config,
        )
        .await?;
        let users = register_users(
            &targets[0].auth,
            &run_id,
            config.users,
            &config.workload.password,
        )
        .await?;
        let workload = Arc::new(Workload::new(
            targets,
            Some(verifier),
            Arc::clone(&recorder),
            users,
            config.workload.clone(),
        ));
        workload.seed(config.sessions).await?;
        let (stop, _) = watch::channel(false);
        Ok(Self {
            redis,
            replicas,
            feed_proxy,
            workload,
            recorder,
            log_dir,
            schema: Some(schema),
            stop,
            tasks: Vec::new(),
            _scratch: scratch,
        })
    }

    pub fn start_load(&mut self) {
        self.tasks = self.workload.spawn(self.stop.subscribe());
    }

    pub async fn stop_load(&mut self) {
        self.stop.send_replace(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Resident set size of every replica, for the report.
    pub fn note_rss(&self) {
        let sizes: Vec<String> = self
            .replicas
            .iter()
            .map(|replica| match replica.rss_kib() {
                Some(kib) => format!("{} {:.1} MiB", replica.name, kib as f64 / 1024.0),
                None => format!("{} not running", replica.name),
            })
            .collect();
        self.recorder.note(format!("RSS: {}", sizes.join(", ")));
    }

    /// Stops everything and drops the schema.
    pub async fn finish(mut self) -> Result<(), RunError> {
        self.stop_load().await;
        for replica in &mut self.replicas {
            replica.terminate();
        }
        if let Some(schema) = self.schema.take() {
            schema.drop_now().await?;
        }
        Ok(())
    }
}
