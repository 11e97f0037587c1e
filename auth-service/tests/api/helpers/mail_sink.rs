//! A real SMTP server for the account tests: Python's aiosmtpd (pinned in
//! `tests/api/mail_sink/requirements.txt`), installed once into a virtualenv under the target
//! directory and started per test on a free port. Each message it receives comes back as JSON.
//! Under CI a sink that cannot start fails the test; elsewhere the test says it is skipped.

use std::{
    io::BufRead,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tokio::sync::{OnceCell, mpsc};

type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct MailSink {
    pub port: u16,
    lines: mpsc::UnboundedReceiver<String>,
    child: Child,
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One mail as the sink received it.
#[derive(Debug, serde::Deserialize)]
pub struct Mail {
    pub to: Vec<String>,
    pub from: String,
    pub subject: String,
    pub body: String,
}

static PYTHON: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();

fn sink_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/mail_sink")
}

/// The virtualenv's interpreter, with aiosmtpd installed (once per test run).
async fn python() -> Result<PathBuf, String> {
    PYTHON
        .get_or_init(|| async {
            let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mail-sink-venv");
            let python = venv.join("bin/python");
            let run = |program: PathBuf, args: Vec<String>| async move {
                let output = tokio::task::spawn_blocking({
                    let (program, args) = (program.clone(), args.clone());
                    move || {
                        Command::new(&program)
                            .args(&args)
                            .stdin(Stdio::null())
                            .output()
                    }
                })
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| format!("{}: {error}", program.display()))?;
                if output.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} {args:?} failed: {}",
                        program.display(),
                        String::from_utf8_lossy(&output.stderr)
                    ))
                }
            };
            if !python.exists() {
                run(
                    "python3".into(),
                    vec!["-m".into(), "venv".into(), venv.display().to_string()],
                )
                .await?;
            }
            let requirements = sink_dir().join("requirements.txt");
            run(
                python.clone(),
                vec![
                    "-m".into(),
                    "pip".into(),
                    "install".into(),
                    "-q".into(),
                    "--disable-pip-version-check".into(),
                    "-r".into(),
                    requirements.display().to_string(),
                ],
            )
            .await?;
            Ok(python)
        })
        .await
        .clone()
}

impl MailSink {
    /// A running sink, or `None` (after saying so) where it cannot start outside CI.
    pub async fn start(test: &str) -> Result<Option<Self>, Error> {
        match Self::try_start().await {
            Ok(sink) => Ok(Some(sink)),
            Err(error) if std::env::var_os("CI").is_some() => {
                Err(format!("{test}: the SMTP sink (aiosmtpd) did not start: {error}").into())
            }
            Err(error) => {
                eprintln!("skipped {test}: the SMTP sink (aiosmtpd) did not start: {error}");
                Ok(None)
            }
        }
    }

    async fn try_start() -> Result<Self, Error> {
        let python = python().await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(python)
            .arg(sink_dir().join("sink.py"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (sender, mut lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let first = tokio::time::timeout(Duration::from_secs(30), lines.recv()).await;
        if !matches!(first, Ok(Some(ref line)) if line == "ready") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the sink said {first:?} instead of ready").into());
        }
        Ok(Self { port, lines, child })
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP to a relay on this host.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next mail received, waiting up to `limit`.
    pub async fn next_mail(&mut self, limit: Duration) -> Result<Mail, Error> {
        let line = tokio::time::timeout(limit, self.lines.recv())
            .await
            .map_err(|_| format!("no mail within {limit:?}"))?
            .ok_or("the sink stopped")?;
        Ok(serde_json::from_str(&line)?)
    }
}
