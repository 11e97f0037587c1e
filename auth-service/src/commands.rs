//! The administrative subcommands of the binary, run against the same database settings as the
//! server: `user create` (the first admin), `keys rotate`, `keys revoke`, `keys rewrap` and
//! `prune`.

use std::io::BufRead;

use crate::{
    app::{Components, StartError},
    config::{KeysCommand, Settings, UserCommand},
    domain::{
        AuthError, Timestamp,
        audit::{AdminAction, AuditEvent},
        ports::Store,
    },
    engine::{
        key_seal::KeySeal,
        keys_at_rest,
        pruner::{self, PruneOutcome},
    },
    store,
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
            let created = components
                .core
                .create_user(&email, password, &roles, Timestamp::now())
                .await;
            audit(
                &components,
                AdminAction::CreateUser,
                &email,
                created.is_ok(),
            );
            let user_id = created?;
            Ok(format!("created user {user_id} <{email}>"))
        }
    }
}

pub async fn keys(settings: &Settings, command: KeysCommand) -> Result<String, StartError> {
    match command {
        KeysCommand::Rotate { activate_in } => {
            let components = Components::open(settings).await?;
            let delay = activate_in.unwrap_or(settings.key_activation_delay);
            let rotated = components
                .keys
                .rotate(
                    Timestamp::now(),
                    delay,
                    settings.access_token_ttl + settings.token_leeway,
                )
                .await;
            audit(
                &components,
                AdminAction::RotateSigningKey,
                "",
                rotated.is_ok(),
            );
            let kid = rotated?;
            Ok(format!(
                "published key {kid}; it signs new tokens in {}",
                humantime::format_duration(delay)
            ))
        }
        KeysCommand::Rewrap { new_key_file } => {
            let store = open_store(settings).await?;
            let current = settings
                .storage
                .key_encryption_key_file
                .as_deref()
                .map(KeySeal::from_file)
                .transpose()?;
            let new = KeySeal::from_file(&new_key_file)?;
            let resealed = keys_at_rest::rewrap(store.as_ref(), current.as_ref(), &new).await?;
            Ok(format!(
                "re-sealed {resealed} signing keys with key {}; now point AUTH_KEY_ENCRYPTION_KEY_FILE \
                 at {} and restart every server",
                new.id_text(),
                new_key_file.display()
            ))
        }
        KeysCommand::Revoke { kid } => {
            let components = Components::open(settings).await?;
            let revoked = components
                .keys
                .revoke(
                    &kid,
                    Timestamp::now(),
                    settings.access_token_ttl + settings.token_leeway,
                )
                .await;
            audit(
                &components,
                AdminAction::RevokeSigningKey,
                &kid,
                revoked.is_ok(),
            );
            let successor = revoked?;
            Ok(match successor {
                Some(successor) => {
                    format!("revoked key {kid}; key {successor} signs new tokens from now")
                }
                None => format!("key {kid} was already revoked"),
            })
        }
    }
}

/// The offline commands are administration too: each is on the audit trail (`domain/audit.rs`),
/// made by whoever runs the binary on this host.
fn audit(components: &Components, action: AdminAction, target: &str, succeeded: bool) {
    components.core.audit_trail().record(&AuditEvent {
        admin: "local:auth-service",
        action,
        target,
        outcome: if succeeded { "ok" } else { "FAILED" },
        client: "local",
        at: Timestamp::now(),
    });
}

/// `prune [--dry-run]`: one pruning run now, with the servers' retention settings.
pub async fn prune(settings: &Settings, dry_run: bool) -> Result<String, StartError> {
    let store = open_store(settings).await?;
    let outcome = pruner::prune(
        store.as_ref(),
        &settings.prune_rules(),
        Timestamp::now(),
        dry_run,
    )
    .await?;
    let table = |verb: &str, counts: crate::domain::ports::PruneCounts| {
        format!(
            "{verb}: sessions={} refresh_tokens={} session_changes={} signing_keys={}",
            counts.sessions, counts.refresh_tokens, counts.session_changes, counts.signing_keys
        )
    };
    Ok(match outcome {
        PruneOutcome::Pruned(counts) => table("pruned", counts),
        PruneOutcome::WouldPrune(counts) => {
            format!(
                "{} (dry run: nothing deleted)",
                table("would prune", counts)
            )
        }
        PruneOutcome::Busy => "another process is pruning this database; nothing done".into(),
    })
}

/// The database alone, for the commands that need neither keys nor hashing.
async fn open_store(settings: &Settings) -> Result<std::sync::Arc<dyn Store>, StartError> {
    settings.contradictions().map_err(StartError::Settings)?;
    let database_url = settings.database_url.as_ref().map(|url| url.expose());
    Ok(store::connect(database_url, &settings.data_dir).await?)
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
