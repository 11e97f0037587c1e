//! A private PostgreSQL and a private `redis-server`, each speaking TLS with a certificate the
//! test made, on a free port, in a temporary directory, stopped when dropped: for the tests of
//! TLS to the service's dependencies, which the shared servers (`TEST_DATABASE_URL`,
//! `TEST_REDIS_URL`) cannot be reconfigured for.
//!
//! PostgreSQL refuses to run as root; when the tests do, `initdb` and `postgres` run as the
//! `postgres` user (through `setpriv`), in a directory handed to that user.
//!
//! Without the binaries a developer's run skips these tests (and says so); under CI (`CI` set)
//! they fail, so a run that did not test TLS cannot pass.

use std::{
    fs::{self, File},
    net::TcpStream,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a private server may take to accept connections.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// A binary the test needs: its path, or `None` after saying why the test is skipped (a
/// developer's run) or a panic (under CI).
fn required(found: Option<PathBuf>, what: &str, test: &str) -> Option<PathBuf> {
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => panic!(
            "{test}: {what} is not installed, and CI is set: the test cannot be skipped \
             (Debian: apt-get install postgresql redis-server)"
        ),
        None => {
            eprintln!("skipped {test}: {what} is not installed");
            None
        }
    }
}

/// The newest `/usr/lib/postgresql/*/bin` with `initdb` and `postgres` (or `TEST_POSTGRES_BIN`).
fn postgres_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TEST_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn on_path(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(binary))
            .find(|candidate| candidate.is_file())
    })
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn write_private(path: &Path, content: &str) -> Result<PathBuf, BoxError> {
    fs::write(path, content)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(path.to_path_buf())
}

fn run_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn id_of(user: &str, flag: &str) -> Result<u32, BoxError> {
    let output = Command::new("id").args([flag, user]).output()?;
    Ok(std::str::from_utf8(&output.stdout)?.trim().parse()?)
}

/// Who runs PostgreSQL: `None` for the current user, or the `postgres` user's ids under root.
struct Owner(Option<(u32, u32)>);

impl Owner {
    fn find() -> Result<Self, BoxError> {
        if !run_as_root() {
            return Ok(Self(None));
        }
        let ids = (id_of("postgres", "-u")?, id_of("postgres", "-g")?);
        Ok(Self(Some(ids)))
    }

    fn give(&self, path: &Path) -> Result<(), BoxError> {
        if let Some((uid, gid)) = self.0 {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    fn command(&self, binary: &Path) -> Command {
        match self.0 {
            None => Command::new(binary),
            Some((uid, gid)) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(binary);
                command
            }
        }
    }
}

/// Stops `child` with `signal` (the fast, clean way for the server), then waits for it.
fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until `port` on 127.0.0.1 accepts a TCP connection, or `child` has exited.
fn wait_for_port(child: &mut Child, port: u16, what: &str, log: &Path) -> Result<(), BoxError> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(log).unwrap_or_default();
            return Err(format!("{what} exited ({status}) before listening:\n{log}").into());
        }
        if Instant::now() > deadline {
            return Err(
                format!("{what} did not listen on port {port} within {READY_LIMIT:?}").into(),
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A private PostgreSQL with `ssl=on`, serving `cert`/`key`, trusting every local user.
pub struct PrivatePostgres {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// `Ok(None)`: PostgreSQL is not installed and this is not CI (the test says it skipped).
    pub async fn start(test: &str, cert: &str, key: &str) -> Result<Option<Self>, BoxError> {
        Self::start_listening_on(test, cert, key, "localhost").await
    }

    /// With `listen_addresses` (`*`: every interface, trusting every client address too).
    pub async fn start_listening_on(
        test: &str,
        cert: &str,
        key: &str,
        listen_addresses: &str,
    ) -> Result<Option<Self>, BoxError> {
        let Some(bin) = required(postgres_bin_dir(), "PostgreSQL (initdb, postgres)", test) else {
            return Ok(None);
        };
        let (cert, key) = (cert.to_owned(), key.to_owned());
        let listen = listen_addresses.to_owned();
        // initdb and the wait for the server block: keep them off the test's runtime threads.
        let server =
            tokio::task::spawn_blocking(move || Self::start_blocking(&bin, &cert, &key, &listen))
                .await??;
        server.wait_until_accepting().await?;
        Ok(Some(server))
    }

    fn start_blocking(bin: &Path, cert: &str, key: &str, listen: &str) -> Result<Self, BoxError> {
        let owner = Owner::find()?;
        let dir = tempfile::tempdir()?;
        owner.give(dir.path())?;
        let data = dir.path().join("data");
        let cert_file = write_private(&dir.path().join("server.pem"), cert)?;
        let key_file = write_private(&dir.path().join("server-key.pem"), key)?;
        owner.give(&cert_file)?;
        owner.give(&key_file)?;
        let initdb = owner
            .command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()?;
        if !initdb.status.success() {
            return Err(
                format!("initdb failed: {}", String::from_utf8_lossy(&initdb.stderr)).into(),
            );
        }
        if listen == "*" {
            let mut hba = fs::OpenOptions::new()
                .append(true)
                .open(data.join("pg_hba.conf"))?;
            std::io::Write::write_all(&mut hba, b"host all all 0.0.0.0/0 trust\n")?;
        }
        let port = free_port()?;
        let log_path = dir.path().join("postgres.log");
        let log = File::create(&log_path)?;
        let mut child = owner
            .command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .arg("-c")
            .arg(format!("listen_addresses={listen}"))
            .args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", cert_file.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key_file.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=40"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        if let Err(error) = wait_for_port(&mut child, port, "postgres", &log_path) {
            stop(&mut child, "-QUIT");
            return Err(error);
        }
        Ok(Self {
            port,
            child,
            _dir: dir,
        })
    }

    /// The port answers before the server accepts logins ("the database system is starting up").
    async fn wait_until_accepting(&self) -> Result<(), BoxError> {
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        );
        let deadline = tokio::time::Instant::now() + READY_LIMIT;
        loop {
            match sqlx::PgPool::connect(&url).await {
                Ok(pool) => {
                    pool.close().await;
                    return Ok(());
                }
                Err(error) if tokio::time::Instant::now() > deadline => {
                    return Err(format!("the private PostgreSQL never accepted: {error}").into());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A `DATABASE_URL` for `host`, with the query `params` (`sslmode=...&sslrootcert=...`).
    pub fn url(&self, user_info: &str, host: &str, params: &str) -> String {
        format!(
            "postgres://{user_info}@{host}:{}/postgres?{params}",
            self.port
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the data is thrown away with the directory.
        stop(&mut self.child, "-QUIT");
    }
}

/// A private `redis-server` speaking only TLS, serving `cert`/`key`; with `client_ca`, every
/// client must present a certificate that CA signed.
pub struct PrivateRedis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// `Ok(None)`: redis-server is not installed and this is not CI (the test says it skipped).
    pub fn start(
        test: &str,
        cert: &str,
        key: &str,
        client_ca: &str,
        require_client_certificates: bool,
    ) -> Result<Option<Self>, BoxError> {
        let Some(binary) = required(on_path("redis-server"), "redis-server", test) else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let cert_file = write_private(&dir.path().join("redis.pem"), cert)?;
        let key_file = write_private(&dir.path().join("redis-key.pem"), key)?;
        let ca_file = write_private(&dir.path().join("client-ca.pem"), client_ca)?;
        let port = free_port()?;
        let log_path = dir.path().join("redis.log");
        let log = File::create(&log_path)?;
        let mut child = Command::new(binary)
            .args(["--port", "0", "--bind", "127.0.0.1", "-::1", "--tls-port"])
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(&cert_file)
            .arg("--tls-key-file")
            .arg(&key_file)
            .arg("--tls-ca-cert-file")
            .arg(&ca_file)
            .arg("--tls-auth-clients")
            .arg(if require_client_certificates {
                "yes"
            } else {
                "no"
            })
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        if let Err(error) = wait_for_port(&mut child, port, "redis-server", &log_path) {
            stop(&mut child, "-TERM");
            return Err(error);
        }
        Ok(Some(Self {
            port,
            child,
            _dir: dir,
        }))
    }

    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        stop(&mut self.child, "-KILL");
    }
}
