//! `authctl`'s command line. There is deliberately no flag for the token: a flag would leave it
//! in shell history and in the process list (`ps`), readable by every local user.

use std::{path::PathBuf, time::Duration};

use clap::{ArgGroup, Args, Parser, Subcommand};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// The environment variable holding the bearer token.
pub const TOKEN_ENV: &str = "AUTHCTL_TOKEN";

#[derive(Debug, Parser)]
#[command(
    name = "authctl",
    version,
    about = "Administer an auth-service: accounts, roles, suspensions, sessions and signing keys",
    after_help = "Authentication: the token of a management session of an account with the `admin` \
                  role, logged in within the last 15 minutes (`authctl login` prints one), is \
                  read from the AUTHCTL_TOKEN environment variable, or from \
                  the file named by --token-file / AUTHCTL_TOKEN_FILE. --token-file wins over \
                  AUTHCTL_TOKEN, which wins over AUTHCTL_TOKEN_FILE. There is no flag for the \
                  token itself.\n\nA USER argument is a user id, or an email address (anything \
                  with an @), which is looked up first.\n\nExit status: 0 on success, 1 when the \
                  server refused or could not be reached, 2 for a usage error (including a \
                  missing token)."
)]
pub struct Cli {
    /// The auth-service to talk to.
    #[arg(long, env = "AUTHCTL_SERVER", default_value = DEFAULT_SERVER, global = true, value_name = "URL")]
    pub server: String,

    /// Print machine-readable JSON (proto3 JSON field names) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// A file holding the bearer token (one line). Keep it readable only by you (chmod 600).
    #[arg(long, env = "AUTHCTL_TOKEN_FILE", global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in for a management session and print its session token (for AUTHCTL_TOKEN). The
    /// password is read from the first line of standard input. Needs no token.
    Login {
        #[arg(long)]
        email: String,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// List and end sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Manage the access-token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage service clients (service accounts that obtain tokens with IssueServiceToken).
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service client and print its secret (shown only this once).
    Create {
        /// The client id, e.g. `order-service` (lower-case letters, digits, `-`).
        name: String,
        /// An audience its own tokens may be issued for (repeatable).
        #[arg(long = "audience", value_name = "AUDIENCE")]
        audiences: Vec<String>,
        /// An audience it may exchange users' credentials into (repeatable).
        #[arg(long = "exchange-audience", value_name = "AUDIENCE")]
        exchange_audiences: Vec<String>,
        /// A bound mutual-TLS identity: certificate subject (`CN=order-service`) or URI SAN
        /// (`spiffe://example.org/order-service`).
        #[arg(long, value_name = "IDENTITY")]
        mtls_identity: Option<String>,
    },
    /// List every service client.
    List,
    /// Disable a client: its tokens are refused everywhere at once, and it gets no new ones.
    Disable {
        /// The client id.
        client_id: String,
    },
    /// Replace a client's secret and print the new one (shown only this once).
    RotateSecret {
        /// The client id.
        client_id: String,
        /// How long the replaced secret stays valid (e.g. `1h`); default: not at all.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        overlap: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
        /// A role to grant (repeatable), e.g. `--role admin`.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Show an account: id, email, roles, creation time, suspension.
    Get {
        /// User id or email (an id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Replace an account's roles.
    SetRoles(SetRoles),
    /// Suspend an account: end all its sessions now and refuse its logins and refreshes.
    Suspend {
        /// User id or email (an id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Lift a suspension: the user may log in again.
    Reactivate {
        /// User id or email (an id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    #[command(flatten)]
    Accounts(AccountCommand),
}

/// The account commands of `accounts.rs` (list, delete, set-password, import).
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List accounts a page at a time, oldest first (deleted accounts and service clients are
    /// never listed).
    List(ListUsers),
    /// Delete an account: end all its sessions now and erase its email, password hash and
    /// roles; an anonymous tombstone keeps the id, which is never reused.
    Delete {
        /// User id or email (an id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Set a new password for an account and end all its sessions. The password is read from
    /// the first line of standard input (never from the command line).
    SetPassword {
        /// User id or email (an id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Import accounts from a JSON Lines file, one account a line:
    /// {"email": ..., "id": ... (optional), "roles": [...], "password_hash": "$2b$..."}.
    /// bcrypt ($2a$/$2b$/$2y$) and argon2 hashes are accepted; bcrypt is replaced by argon2id at
    /// each account's first login. Re-running the same file imports nothing twice.
    Import {
        /// The JSON Lines file.
        file: PathBuf,
        /// Lines per ImportUsers call, each committed in one transaction (1 to 1000).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
        batch_size: u32,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("status").args(["suspended", "active"])))]
pub struct ListUsers {
    /// Only emails starting with this (case-insensitive).
    #[arg(long, value_name = "PREFIX")]
    pub email_prefix: Option<String>,
    /// Only accounts with this role.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Only suspended accounts.
    #[arg(long)]
    pub suspended: bool,
    /// Only active (not suspended) accounts.
    #[arg(long)]
    pub active: bool,
    /// Accounts per page (server default 50, at most 500).
    #[arg(long, value_name = "N")]
    pub page_size: Option<u32>,
    /// Continue a listing: the token the previous page printed.
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
    /// Fetch every page.
    #[arg(long, conflicts_with = "page_token")]
    pub all: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("new_roles").required(true).args(["roles", "none"])))]
pub struct SetRoles {
    /// User id or email (an id may start with `-`).
    #[arg(allow_hyphen_values = true)]
    pub user: String,
    /// A role the account will have (repeatable). The roles given replace all current ones.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Remove every role.
    #[arg(long)]
    pub none: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List a user's live sessions, newest first.
    List {
        /// User id or email (an id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// End one session (any user's).
    Revoke {
        /// Session id (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        session_id: String,
    },
    /// End every session of a user (they may log in again; see `user suspend`).
    RevokeAll {
        /// User id or email (an id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Publish a new signing key now; it signs new tokens after the activation delay.
    Rotate {
        /// How long the key is published before it signs (e.g. `5m`, `0s`). Default: the
        /// server's AUTH_KEY_ACTIVATION_DELAY.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        activate_in: Option<Duration>,
    },
    /// Distrust a compromised signing key at once: out of the JWKS, its tokens refused
    /// everywhere, and a new key signing from now.
    Revoke {
        /// The key id (a `kid` of the JWKS, or of a token's header).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn set_roles_needs_roles_or_an_explicit_none() {
        assert!(Cli::try_parse_from(["authctl", "user", "set-roles", "u1"]).is_err());
        assert!(Cli::try_parse_from(["authctl", "user", "set-roles", "u1", "--none"]).is_ok());
        assert!(
            Cli::try_parse_from([
                "authctl",
                "user",
                "set-roles",
                "u1",
                "--role",
                "a",
                "--none"
            ])
            .is_err()
        );
    }

    #[test]
    fn ids_may_start_with_a_hyphen() -> Result<(), clap::Error> {
        // Ids are base64url, so one in 32 starts with `-`.
        let cli = Cli::try_parse_from(["authctl", "user", "get", "-Qx9", "--json"])?;
        assert!(cli.json);
        assert!(
            matches!(cli.command, Command::User { command: UserCommand::Get { user } } if user == "-Qx9")
        );
        let cli = Cli::try_parse_from(["authctl", "sessions", "revoke", "-s1"])?;
        assert!(matches!(
            cli.command,
            Command::Sessions { command: SessionsCommand::Revoke { session_id } } if session_id == "-s1"
        ));
        // A flag before the id is still a flag.
        let cli = Cli::try_parse_from(["authctl", "user", "set-roles", "--role", "a", "-u1"])?;
        let Command::User {
            command: UserCommand::SetRoles(set),
        } = cli.command
        else {
            panic!("not set-roles");
        };
        assert_eq!(
            (set.user.as_str(), set.roles.as_slice()),
            ("-u1", &["a".to_owned()][..])
        );
        Ok(())
    }

    #[test]
    fn account_commands_sit_beside_the_others_and_take_no_password_flag() {
        assert!(Cli::try_parse_from(["authctl", "user", "list", "--suspended"]).is_ok());
        assert!(
            Cli::try_parse_from(["authctl", "user", "list", "--suspended", "--active"]).is_err()
        );
        assert!(Cli::try_parse_from(["authctl", "user", "delete", "-u1"]).is_ok());
        assert!(
            Cli::try_parse_from(["authctl", "user", "set-password", "u1", "--password", "x"])
                .is_err()
        );
        assert!(
            Cli::try_parse_from(["authctl", "user", "import", "f.jsonl", "--batch-size", "0"])
                .is_err()
        );
    }

    #[test]
    fn there_is_no_token_flag() {
        assert!(Cli::try_parse_from(["authctl", "--token", "abc", "keys", "rotate"]).is_err());
    }

    #[test]
    fn global_flags_go_anywhere() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from([
            "authctl",
            "keys",
            "rotate",
            "--activate-in",
            "5m",
            "--json",
            "--server",
            "http://auth:50051",
        ])?;
        assert!(cli.json);
        assert_eq!(cli.server, "http://auth:50051");
        assert!(matches!(
            cli.command,
            Command::Keys {
                command: KeysCommand::Rotate {
                    activate_in: Some(delay)
                }
            } if delay == Duration::from_secs(300)
        ));
        Ok(())
    }
}
