//! The processes of a run: auth-service replicas started from their real binary (so a fault can
//! `kill -9` one), a private `redis-server` without persistence (so a fault can kill it and lose
//! everything in it), and the fresh PostgreSQL schema the replicas share.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use auth_api::v1::{GetJwksRequest, key_service_client::KeyServiceClient};
use tonic::transport::{Channel, Endpoint};

use crate::RunError;

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, RunError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn log_file(path: &Path) -> Result<File, RunError> {
    Ok(OpenOptions::new().create(true).append(true).open(path)?)
}

/// A channel that (re)connects on demand: it survives the replica's restarts.
pub fn lazy_channel(url: &str) -> Result<Channel, RunError> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .connect_lazy())
}

pub struct RedisServer {
    pub port: u16,
    binary: String,
    log: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start(binary: &str, log_dir: &Path) -> Result<Self, RunError> {
        let mut server = Self {
            port: free_port()?,
            binary: binary.to_owned(),
            log: log_dir.join("redis.log"),
            child: None,
        };
        server.spawn()?;
        server.wait_ready(Duration::from_secs(10)).await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> Result<(), RunError> {
        let log = log_file(&self.log)?;
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", self.binary))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: with no persistence, every key and subscription in it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) -> Result<(), RunError> {
        self.kill();
        self.spawn()?;
        self.wait_ready(Duration::from_secs(10)).await
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), RunError> {
        let deadline = Instant::now() + limit;
        let address = format!("127.0.0.1:{}", self.port);
        loop {
            let pong = tokio::task::spawn_blocking({
                let address = address.clone();
                move || -> std::io::Result<bool> {
                    let mut stream = TcpStream::connect(&address)?;
                    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
                    stream.write_all(b"PING\r\n")?;
                    let mut answer = [0u8; 7];
                    stream.read_exact(&mut answer)?;
                    Ok(&answer == b"+PONG\r\n")
                }
            })
            .await;
            if matches!(pong, Ok(Ok(true))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(
                    format!("redis-server on port {} did not answer PING", self.port).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One auth-service process.
pub struct Replica {
    pub name: String,
    pub port: u16,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    pub fn new(
        name: &str,
        binary: &Path,
        env: Vec<(String, String)>,
        log_dir: &Path,
    ) -> Result<Self, RunError> {
        Ok(Self {
            name: name.to_owned(),
            port: free_port()?,
            binary: binary.to_owned(),
            env,
            log: log_dir.join(format!("{name}.log")),
            child: None,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub async fn start(&mut self) -> Result<(), RunError> {
        let log = log_file(&self.log)?;
        let child = Command::new(&self.binary)
            .envs(
                self.env
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            )
            .env("AUTH_LISTEN_ADDR", format!("127.0.0.1:{}", self.port))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", self.binary.display()))?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30)).await
    }

    /// `kill -9`: no drain, no goodbye; whatever it acknowledged must already be durable.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for it to exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Ready once it serves `GetJwks`.
    async fn wait_ready(&mut self, limit: Duration) -> Result<(), RunError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "{} exited during start ({status}); see {}",
                    self.name,
                    self.log.display()
                )
                .into());
            }
            if let Ok(channel) = Endpoint::from_shared(self.url())?.connect().await
                && KeyServiceClient::new(channel)
                    .get_jwks(GetJwksRequest {})
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{} was not ready within {limit:?}", self.name).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident set size, from `/proc` (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A fresh schema in the PostgreSQL database at `base`, dropped by [`Schema::drop_now`].
pub struct Schema {
    base: String,
    pub name: String,
}

impl Schema {
    pub async fn create(base: &str, run_id: &str) -> Result<Self, RunError> {
        let name = format!("load_{run_id}");
        let admin = sqlx::PgPool::connect(base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await?;
        admin.close().await;
        Ok(Self {
            base: base.to_owned(),
            name,
        })
    }

    /// The URL the replicas use: the base URL with this schema as the search path.
    pub fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{separator}options[search_path]={}", self.base, self.name)
    }

    pub async fn drop_now(self) -> Result<(), RunError> {
        let admin = sqlx::PgPool::connect(&self.base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&admin)
        .await?;
        admin.close().await;
        Ok(())
    }
}

/// The settings every replica of a run gets: limits that would throttle the load generator's
/// one address are lifted, everything else is the service's default.
pub fn replica_env(
    database_url: &str,
    redis_url: &str,
    data_dir: &Path,
    run_id: &str,
) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", database_url.to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
        ("AUTH_DATA_DIR", data_dir.display().to_string()),
        // One client address sends every login: no per-address throttle, no session cap.
        ("AUTH_LOGIN_RATE_PER_ADDRESS", "0".into()),
        ("AUTH_REFRESH_RATE_PER_ADDRESS", "0".into()),
        ("AUTH_MAX_SESSIONS_PER_USER", "100000".into()),
        ("AUTH_LIMITS_KEY_PREFIX", format!("load-{run_id}")),
        // Frequent heartbeats, so a verifier notices a dead feed within a second.
        ("AUTH_FEED_HEARTBEAT_INTERVAL", "300ms".into()),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}
