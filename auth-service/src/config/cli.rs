//! The command line: `serve` (the default), `user`, `keys`, `prune` and `healthcheck` subcommands
//! around the flattened [`Settings`], which every subcommand shares. What the subcommands do lives
//! in `commands.rs` (`healthcheck`: `healthcheck.rs`).

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use super::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "auth-service",
    version,
    about = "Login, tokens and sessions for a fleet of services, over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (what `auth-service` with no command does).
    Serve,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the access-token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Delete what no rule needs any more (ended sessions past AUTH_RETAIN_ENDED_SESSIONS with
    /// their refresh-token hashes, old change-log rows, retired key rows), as the servers do every
    /// AUTH_PRUNE_INTERVAL, and print how many rows of each table.
    Prune {
        /// Only count what would be deleted now.
        #[arg(long)]
        dry_run: bool,
    },
    /// Ask a running server's gRPC health service whether it serves (exit status 0) or not (1):
    /// for container and Kubernetes probes, in place of a bare TCP connect.
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The server, `host:port` (default: AUTH_LISTEN_ADDR, with 0.0.0.0 or :: read as the
    /// loopback address).
    #[arg(long)]
    pub addr: Option<String>,
    /// Liveness: succeed when the server answers at all, SERVING or NOT_SERVING (a replica whose
    /// database is away is alive and must not be restarted for it). Without it, readiness:
    /// succeed only on SERVING.
    #[arg(long)]
    pub live: bool,
    /// Give up (exit status 1) after this long.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
        /// A role to grant (repeatable), e.g. `--role admin`.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Publish a new signing key; it signs after the activation delay, and running servers pick
    /// it up without a restart.
    Rotate {
        /// Overrides AUTH_KEY_ACTIVATION_DELAY for this rotation.
        #[arg(long, value_parser = humantime::parse_duration)]
        activate_in: Option<Duration>,
    },
    /// Distrust a compromised signing key at once: it leaves the JWKS, its tokens are refused,
    /// and a new key signs from now. Running servers pick it up at their next key reload (use
    /// `authctl keys revoke` against a running server to reach its revocation feed at once).
    Revoke {
        /// The key id (a `kid` of the JWKS, or of a token's header).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Re-seal every signing key's private half with the key in `--new-key-file` (opening them
    /// with AUTH_KEY_ENCRYPTION_KEY_FILE, or sealing plaintext ones), in one transaction; then
    /// point AUTH_KEY_ENCRYPTION_KEY_FILE at the new file and restart the servers.
    Rewrap {
        #[arg(long)]
        new_key_file: PathBuf,
    },
}
