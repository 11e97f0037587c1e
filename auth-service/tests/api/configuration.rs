//! Configuration hygiene, through the real binary: `--help` never shows a secret's value,
//! secrets may come from `*_FILE`, settings that make no sense stop the start with the variable
//! named, and the effective settings are logged once, with the URLs' passwords redacted.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::helpers::TestResult;

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

/// A command for the binary on its own data directory and an ephemeral port.
fn command(data: &tempfile::TempDir) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env("AUTH_DATA_DIR", data.path())
        .env("AUTH_LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL");
    command
}

/// Runs `command`, which must exit (with a failure) within 20 s; its standard error.
fn refusal(mut command: Command) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the service started instead of refusing".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap_or_default();
    assert!(!status.success(), "exited successfully: {stderr}");
    Ok(stderr)
}

#[test]
fn help_names_the_secret_variables_but_never_their_values() -> TestResult {
    let output = Command::new(BINARY)
        .arg("--help")
        .env("DATABASE_URL", "postgres://auth:hunter2@db/auth")
        .env("REDIS_URL", "rediss://:hunter3@cache:6380")
        .output()?;
    let help = String::from_utf8(output.stdout)?;
    for variable in [
        "DATABASE_URL",
        "DATABASE_URL_FILE",
        "REDIS_URL",
        "REDIS_URL_FILE",
        "AUTH_REDIS_TLS_CA",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "{variable}: {help}"
        );
    }
    assert!(
        !help.contains("hunter2") && !help.contains("hunter3"),
        "{help}"
    );
    Ok(())
}

#[test]
fn nonsensical_settings_stop_the_start_naming_the_variable() -> TestResult {
    let data = tempfile::tempdir()?;
    let url_file = data.path().join("database-url");
    std::fs::write(&url_file, "postgres://auth:hunter2@db/auth\n")?;
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[
                ("DATABASE_URL", "postgres://auth:hunter2@db/auth"),
                ("DATABASE_URL_FILE", url_file.to_str().ok_or("path")?),
            ],
            "DATABASE_URL and DATABASE_URL_FILE are both set",
        ),
        (
            &[
                ("AUTH_ACCESS_TOKEN_TTL", "2h"),
                ("AUTH_REFRESH_TOKEN_TTL", "1h"),
            ],
            "AUTH_ACCESS_TOKEN_TTL (--access-token-ttl) (2h) is longer than AUTH_REFRESH_TOKEN_TTL",
        ),
        (
            &[("AUTH_SESSION_IDLE_TIMEOUT", "0s")],
            "AUTH_SESSION_IDLE_TIMEOUT (--session-idle-timeout) is 0",
        ),
        (
            &[
                ("REDIS_URL", "redis://:hunter2@127.0.0.1:6379"),
                ("AUTH_REDIS_TLS_CA", "/etc/auth/redis-ca.pem"),
            ],
            "need a rediss:// REDIS_URL",
        ),
        (
            &[("REDIS_URL_FILE", "/nonexistent/redis-url")],
            "cannot read REDIS_URL_FILE /nonexistent/redis-url",
        ),
    ];
    for (env, expected) in cases {
        let mut command = command(&data);
        command.envs(env.iter().copied());
        let stderr = refusal(command)?;
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{env:?}: {stderr}");
    }
    Ok(())
}

#[test]
fn the_effective_settings_are_logged_once_at_start_without_the_passwords() -> TestResult {
    let data = tempfile::tempdir()?;
    let url_file = data.path().join("redis-url");
    // Nothing listens on port 1: the service starts anyway and says so (without the URL).
    std::fs::write(&url_file, "redis://:hunter2@127.0.0.1:1\n")?;
    let mut command = command(&data);
    command
        .env("REDIS_URL_FILE", &url_file)
        .env("AUTH_ACCESS_TOKEN_TTL", "10m")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (lines, received) = mpsc::channel();
    // Read to the end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen
        .iter()
        .any(|line: &String| line.contains("auth-service listening"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    // A little longer: the fan-out's first failures to reach Redis are logged too.
    let settle = Instant::now() + Duration::from_millis(500);
    while let Ok(line) = received.recv_timeout(settle.saturating_duration_since(Instant::now())) {
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = seen.join("\n");
    let effective: Vec<&String> = seen
        .iter()
        .filter(|line| line.contains("effective settings"))
        .collect();
    assert_eq!(effective.len(), 1, "{log}");
    assert!(
        effective[0].contains("redis_url=redis://:***@127.0.0.1:1")
            && effective[0].contains("access_token_ttl: 600s"),
        "{log}"
    );
    assert!(!log.contains("hunter2"), "{log}");
    Ok(())
}
