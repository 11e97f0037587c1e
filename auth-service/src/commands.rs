//! The administrative subcommands of the binary, run against the same database settings as the
//! server: `user create` (the first admin), `keys rotate` and `keys revoke`.

use std::io::BufRead;

use crate::{
    app::{Components, StartError},
    config::{KeysCommand, Settings, UserCommand},
    domain::{AuthError, Timestamp},
};

/// Creates an account; the password is the first line of `password_input` (never a flag, which
/// would leave it in shell history and the process list).
pub async fn user(
    settings: &Settings,
    command: UserCommand,
    password_input: impl BufRead,
) -> Result<String, StartError> {
    match command {
        UserCommand::Create { email, roles } => {
            let password = read_first_line(password_input)?;
            let components = Components::open(settings).await?;
            let user_id = components
                .core
                .create_user(&email, password, &roles, Timestamp::now())
                .await?;
            Ok(format!("created user {user_id} <{email}>"))
        }
    }
}

pub async fn keys(settings: &Settings, command: KeysCommand) -> Result<String, StartError> {
    match command {
        KeysCommand::Rotate { activate_in } => {
            let components = Components::open(settings).await?;
            let delay = activate_in.unwrap_or(settings.key_activation_delay);
            let kid = components
                .keys
                .rotate(
                    Timestamp::now(),
                    delay,
                    settings.access_token_ttl + settings.token_leeway,
                )
                .await?;
            Ok(format!(
                "published key {kid}; it signs new tokens in {}",
                humantime::format_duration(delay)
            ))
        }
        KeysCommand::Revoke { kid } => {
            let components = Components::open(settings).await?;
            let successor = components
                .keys
                .revoke(
                    &kid,
                    Timestamp::now(),
                    settings.access_token_ttl + settings.token_leeway,
                )
                .await?;
            Ok(match successor {
                Some(successor) => {
                    format!("revoked key {kid}; key {successor} signs new tokens from now")
                }
                None => format!("key {kid} was already revoked"),
            })
        }
    }
}

fn read_first_line(mut input: impl BufRead) -> Result<String, AuthError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(|error| {
        AuthError::Internal(format!(
            "cannot read the password from standard input: {error}"
        ))
    })?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(AuthError::InvalidArgument("no password on standard input"));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_line_without_its_newline_is_the_password() -> Result<(), AuthError> {
        assert_eq!(
            read_first_line("s3cret pass\r\nignored\n".as_bytes())?,
            "s3cret pass"
        );
        assert!(read_first_line("".as_bytes()).is_err());
        Ok(())
    }
}
