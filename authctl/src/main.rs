//! `authctl`, the administrators' command-line client: a thin shell around the generated
//! `AdminService` client of `auth-api`. It never opens the database; everything it does, it asks
//! the server to do with the caller's bearer token, so the server's authorisation, audit log
//! lines and revocation announcements apply. See `authctl --help`.
//!
//! - `cli.rs`: the clap command line;
//! - `credentials.rs`: the token (environment or file, never a flag) and the password (stdin);
//! - `login.rs`: `authctl login`, the one command that needs no token;
//! - `render.rs`: tables, `key  value` blocks, JSON, and error lines;
//! - `accounts.rs`: `user list`, `user delete`, `user set-password`, `user import`;
//! - `channel.rs`: the endpoint and connection.

mod accounts;
mod channel;
mod cli;
mod credentials;
mod login;
mod render;
mod service;

use std::{
    io::{BufRead, IsTerminal},
    process::ExitCode,
    time::Duration,
};

use auth_api::v1::{self as pb, admin_service_client::AdminServiceClient};
use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
use serde_json::json;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

use channel::{connect, endpoint};
use cli::{AccountCommand, Cli, Command, KeysCommand, SessionsCommand, UserCommand};
use credentials::FileSource;
use render::Rendered;

/// Exit status when the server refused the call or could not be reached.
const EXIT_REFUSED: u8 = 1;
/// Exit status for a usage error (clap uses it too), including a missing token.
const EXIT_USAGE: u8 = 2;

/// Why a command failed.
#[derive(Debug)]
enum Failure {
    /// Local: bad arguments, no token, no password. Nothing was sent.
    Usage(String),
    /// The server could not be reached.
    Connect(String),
    /// The server answered with an error.
    Refused(Status),
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure::Refused(status)
    }
}

/// Parses the command line and the environment, runs the command, prints the answer (stdout) or
/// the error (stderr), and returns the exit status.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let file_source = match matches.value_source("token_file") {
        Some(ValueSource::CommandLine) => FileSource::Flag,
        _ => FileSource::Environment,
    };
    let env_token = std::env::var(cli::TOKEN_ENV).ok();
    let json = cli.json;
    let stdin = std::io::stdin();
    let prompt = stdin.is_terminal();
    let outcome = run(cli, file_source, env_token, stdin.lock(), prompt).await;
    match outcome {
        Ok(rendered) => {
            if json {
                println!("{}", rendered.json);
            } else {
                println!("{}", rendered.text);
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let (rendered, status) = match &failure {
                Failure::Usage(message) => (
                    Rendered {
                        text: message.clone(),
                        json: json!({ "error": { "code": "USAGE", "reason": "USAGE", "message": message } }),
                    },
                    EXIT_USAGE,
                ),
                Failure::Connect(message) => (
                    Rendered {
                        text: format!("UNAVAILABLE: {message}"),
                        json: json!({ "error": { "code": "UNAVAILABLE", "reason": "UNAVAILABLE", "message": message } }),
                    },
                    EXIT_REFUSED,
                ),
                Failure::Refused(status) => (render::status_error(status), EXIT_REFUSED),
            };
            if json {
                eprintln!("{}", rendered.json);
            } else {
                eprintln!("authctl: {}", rendered.text);
            }
            ExitCode::from(status)
        }
    }
}

async fn run(
    cli: Cli,
    file_source: FileSource,
    env_token: Option<String>,
    stdin: impl BufRead,
    prompt: bool,
) -> Result<Rendered, Failure> {
    if let Command::Login { email } = &cli.command {
        if prompt {
            eprint!("password for {email} (read from standard input): ");
        }
        let password = credentials::read_password(stdin).map_err(Failure::Usage)?;
        let endpoint = endpoint(&cli.server)?;
        return login::management_session(endpoint, email, password).await;
    }
    // Everything local is checked before anything is sent.
    let token = credentials::load(
        cli.token_file.as_deref().map(|path| (path, file_source)),
        env_token,
    )
    .map_err(Failure::Usage)?;
    let authorization = token.authorization().map_err(Failure::Usage)?;
    let whose = match &cli.command {
        Command::User {
            command: UserCommand::Create { email: user, .. },
        }
        | Command::User {
            command: UserCommand::Accounts(AccountCommand::SetPassword { user }),
        } => Some(user),
        _ => None,
    };
    let password = match whose {
        Some(user) => {
            if prompt {
                // Typed at a terminal the password is echoed; piping it in avoids that.
                eprint!("password for {user} (read from standard input): ");
            }
            Some(credentials::read_password(stdin).map_err(Failure::Usage)?)
        }
        None => None,
    };
    let client = Admin::connect(&cli.server, authorization).await?;
    client.execute(cli.command, password).await
}

/// The generated client plus the caller's `authorization` header.
struct Admin {
    client: AdminServiceClient<Channel>,
    authorization: MetadataValue<Ascii>,
}

impl Admin {
    async fn connect(server: &str, authorization: MetadataValue<Ascii>) -> Result<Self, Failure> {
        let channel = connect(endpoint(server)?).await?;
        Ok(Self {
            client: AdminServiceClient::new(channel),
            authorization,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    async fn execute(
        &self,
        command: Command,
        password: Option<String>,
    ) -> Result<Rendered, Failure> {
        match command {
            Command::User { command } => self.user(command, password).await,
            Command::Sessions { command } => self.sessions(command).await,
            Command::Keys {
                command: KeysCommand::Rotate { activate_in },
            } => self.rotate(activate_in).await,
            Command::Keys {
                command: KeysCommand::Revoke { kid },
            } => self.revoke_key(kid).await,
            Command::Service { command } => self.service(command).await,
            // Handled before any token is loaded (`run`).
            Command::Login { .. } => Err(Failure::Usage("login needs no token".into())),
        }
    }

    /// A USER argument: an email (anything with an `@`) is looked up, anything else is an id.
    async fn find(&self, user: &str) -> Result<pb::User, Failure> {
        let lookup = if user.contains('@') {
            pb::get_user_request::Lookup::Email(user.to_owned())
        } else {
            pb::get_user_request::Lookup::UserId(user.to_owned())
        };
        self.client
            .clone()
            .get_user(self.request(pb::GetUserRequest {
                lookup: Some(lookup),
            }))
            .await?
            .into_inner()
            .user
            .ok_or_else(|| Failure::Refused(Status::internal("the server sent no user")))
    }

    /// The id for a USER argument, without a round trip when it already is one.
    async fn user_id(&self, user: &str) -> Result<String, Failure> {
        if user.contains('@') {
            Ok(self.find(user).await?.user_id)
        } else {
            Ok(user.to_owned())
        }
    }

    async fn user(
        &self,
        command: UserCommand,
        password: Option<String>,
    ) -> Result<Rendered, Failure> {
        let mut client = self.client.clone();
        match command {
            UserCommand::Create { email, roles } => {
                let password = password
                    .ok_or_else(|| Failure::Usage("no password on standard input".to_owned()))?;
                let user_id = client
                    .create_user(self.request(pb::CreateUserRequest {
                        email: email.clone(),
                        password,
                        roles: roles.clone(),
                    }))
                    .await?
                    .into_inner()
                    .user_id;
                let granted = if roles.is_empty() {
                    String::new()
                } else {
                    format!(" with roles {}", roles.join(", "))
                };
                Ok(Rendered {
                    text: format!("created user {user_id} <{email}>{granted}"),
                    json: json!({ "userId": user_id, "email": email, "roles": roles }),
                })
            }
            UserCommand::Get { user } => Ok(render::user(&self.find(&user).await?)),
            UserCommand::Accounts(command) => self.accounts(command, password).await,
            UserCommand::SetRoles(set) => {
                let user_id = self.user_id(&set.user).await?;
                let roles = if set.none { Vec::new() } else { set.roles };
                let updated = client
                    .set_roles(self.request(pb::SetRolesRequest { user_id, roles }))
                    .await?
                    .into_inner()
                    .user
                    .ok_or_else(|| Failure::Refused(Status::internal("the server sent no user")))?;
                Ok(render::user(&updated))
            }
            UserCommand::Suspend { user } => {
                let user_id = self.user_id(&user).await?;
                let revoked = client
                    .suspend_user(self.request(pb::SuspendUserRequest {
                        user_id: user_id.clone(),
                    }))
                    .await?
                    .into_inner()
                    .revoked_count;
                Ok(Rendered {
                    text: format!(
                        "suspended user {user_id}; ended {revoked} live session{}",
                        render::plural(revoked)
                    ),
                    json: json!({ "userId": user_id, "suspended": true, "revokedCount": revoked }),
                })
            }
            UserCommand::Reactivate { user } => {
                let user_id = self.user_id(&user).await?;
                client
                    .reactivate_user(self.request(pb::ReactivateUserRequest {
                        user_id: user_id.clone(),
                    }))
                    .await?;
                Ok(Rendered {
                    text: format!("reactivated user {user_id}; they may log in again"),
                    json: json!({ "userId": user_id, "suspended": false }),
                })
            }
        }
    }

    async fn sessions(&self, command: SessionsCommand) -> Result<Rendered, Failure> {
        let mut client = self.client.clone();
        match command {
            SessionsCommand::List { user } => self.user_sessions(&user).await,
            SessionsCommand::Revoke { session_id } => {
                client
                    .revoke_session(self.request(pb::AdminRevokeSessionRequest {
                        session_id: session_id.clone(),
                    }))
                    .await?;
                Ok(Rendered {
                    text: format!("revoked session {session_id}"),
                    json: json!({ "sessionId": session_id, "revoked": true }),
                })
            }
            SessionsCommand::RevokeAll { user } => {
                let user_id = self.user_id(&user).await?;
                let revoked = client
                    .revoke_user_sessions(self.request(pb::RevokeUserSessionsRequest {
                        user_id: user_id.clone(),
                    }))
                    .await?
                    .into_inner()
                    .revoked_count;
                Ok(Rendered {
                    text: format!(
                        "revoked {revoked} live session{} of user {user_id}",
                        render::plural(revoked)
                    ),
                    json: json!({ "userId": user_id, "revokedCount": revoked }),
                })
            }
        }
    }

    async fn rotate(&self, activate_in: Option<Duration>) -> Result<Rendered, Failure> {
        let activate_in = activate_in
            .map(prost_types::Duration::try_from)
            .transpose()
            .map_err(|_| Failure::Usage("--activate-in is too long".to_owned()))?;
        let rotated = self
            .client
            .clone()
            .rotate_signing_key(self.request(pb::RotateSigningKeyRequest { activate_in }))
            .await?
            .into_inner();
        let activates_at = render::time_text(rotated.activates_at.as_ref());
        let json = json!({
            "kid": rotated.kid,
            "activatesAt": render::time_json(rotated.activates_at.as_ref()),
        });
        Ok(Rendered {
            text: format!(
                "published key {}; it signs new tokens from {activates_at}",
                rotated.kid
            ),
            json,
        })
    }

    async fn revoke_key(&self, kid: String) -> Result<Rendered, Failure> {
        let revoked = self
            .client
            .clone()
            .revoke_signing_key(self.request(pb::RevokeSigningKeyRequest { kid: kid.clone() }))
            .await?
            .into_inner();
        let text = if revoked.newly_revoked {
            format!(
                "revoked key {kid}; key {} signs new tokens from now",
                revoked.successor_kid
            )
        } else {
            format!("key {kid} was already revoked")
        };
        let json = json!({
            "kid": kid,
            "newlyRevoked": revoked.newly_revoked,
            "successorKid": revoked.successor_kid,
        });
        Ok(Rendered { text, json })
    }
}
