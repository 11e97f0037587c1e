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

/// A running binary, its address, and its log (stderr) as read to the end.
pub struct Listening {
    pub child: Child,
    pub addr: SocketAddr,
    /// Everything the binary wrote to stderr, once it has exited (or closed stderr).
    pub logs: std::thread::JoinHandle<String>,
}

/// Starts `command` (the server's settings in its environment) on an ephemeral port. `RUST_LOG`
/// gains `auth_service::app=info` so the listening line is written, in the text or the JSON log
/// format.
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
    let logs = std::thread::spawn(move || {
        let mut logs = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = listening_address(&line) {
                let _ = found.send(addr);
            }
            logs.push_str(&line);
            logs.push('\n');
        }
        logs
    });
    let addr = match address.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => addr.parse()?,
        Err(_) => {
            let _ = child.kill();
            return Err("the server did not report listening within 30 s".into());
        }
    };
    Ok(Listening { child, addr, logs })
}

/// The address of an "auth-service listening" line, text or JSON.
fn listening_address(line: &str) -> Option<String> {
    if let Some((_, addr)) = line.split_once("auth-service listening addr=") {
        return Some(addr.trim().to_owned());
    }
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = event.get("fields")?;
    if fields.get("message")?.as_str()? != "auth-service listening" {
        return None;
    }
    Some(fields.get("addr")?.as_str()?.to_owned())
}
