//! The real `auth-service` binary on a port it picks itself: started with
//! `AUTH_LISTEN_ADDR=127.0.0.1:0`, its address read back from its own "listening" log line, so
//! no other process can take the port between a test choosing it and the server binding it.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A running binary and its address.
pub struct Listening {
    pub child: Child,
    pub addr: SocketAddr,
}

/// Starts `command` (the server's settings in its environment) on an ephemeral port. `RUST_LOG`
/// gains `auth_service::app=info` so the listening line is written.
pub fn start_listening(
    mut command: Command,
) -> Result<Listening, Box<dyn std::error::Error + Send + Sync>> {
    let filter = command
        .get_envs()
        .find(|(key, _)| *key == "RUST_LOG")
        .and_then(|(_, value)| value.map(|value| value.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "warn".to_owned());
    command
        .env("AUTH_LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", format!("{filter},auth_service::app=info"))
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (found, address) = mpsc::channel();
    // Read to the end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some((_, addr)) = line.split_once("auth-service listening addr=") {
                let _ = found.send(addr.trim().to_owned());
            }
        }
    });
    let addr = match address.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => addr.parse()?,
        Err(_) => {
            let _ = child.kill();
            return Err("the server did not report listening within 30 s".into());
        }
    };
    Ok(Listening { child, addr })
}
