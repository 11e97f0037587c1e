//! `authctl user list | delete | set-password | import`: the account commands added with
//! `ListUsers`, `DeleteUser`, `SetPassword` and `ImportUsers`.
//!
//! `import` reads a JSON Lines file (one account a line: `email`, optional `id`, `roles`,
//! `password_hash`), sends it in batches (each one transaction on the server), shows its
//! progress on stderr, and prints a summary: imported, skipped as duplicates, refused with the
//! reason per line. A line is never echoed: it holds a password hash.

/// A batch is also cut before its message grows past this many bytes: the server refuses
/// requests larger than `AUTH_MAX_REQUEST_BYTES` (64 KiB by default) as a whole.
const MAX_BATCH_BYTES: usize = 48 * 1024;

use std::{
    io::{BufRead, IsTerminal, Write},
    path::Path,
};

use auth_api::v1 as pb;
use prost::Message as _;
use serde_json::{Value, json};

use crate::{Admin, Failure, cli::AccountCommand, cli::ListUsers, render, render::Rendered};

impl Admin {
    pub(crate) async fn accounts(
        &self,
        command: AccountCommand,
        password: Option<String>,
    ) -> Result<Rendered, Failure> {
        match command {
            AccountCommand::List(list) => self.list_users(list).await,
            AccountCommand::Delete { user } => {
                let user_id = self.user_id(&user).await?;
                let deleted = self
                    .client
                    .clone()
                    .delete_user(self.request(pb::DeleteUserRequest {
                        user_id: user_id.clone(),
                    }))
                    .await?
                    .into_inner();
                let revoked = deleted.revoked_count;
                let text = if deleted.newly_deleted {
                    format!(
                        "deleted user {user_id}; ended {revoked} live session{}",
                        render::plural(revoked)
                    )
                } else {
                    format!(
                        "user {user_id} was already deleted; ended {revoked} live session{}",
                        render::plural(revoked)
                    )
                };
                Ok(Rendered {
                    text,
                    json: json!({ "userId": user_id, "revokedCount": revoked, "newlyDeleted": deleted.newly_deleted }),
                })
            }
            AccountCommand::SetPassword { user } => {
                let password = password
                    .ok_or_else(|| Failure::Usage("no password on standard input".to_owned()))?;
                let user_id = self.user_id(&user).await?;
                let revoked = self
                    .client
                    .clone()
                    .set_password(self.request(pb::SetPasswordRequest {
                        user_id: user_id.clone(),
                        password,
                    }))
                    .await?
                    .into_inner()
                    .revoked_count;
                Ok(Rendered {
                    text: format!(
                        "set a new password for user {user_id}; ended {revoked} live session{}",
                        render::plural(revoked)
                    ),
                    json: json!({ "userId": user_id, "revokedCount": revoked }),
                })
            }
            AccountCommand::Import { file, batch_size } => self.import(&file, batch_size).await,
        }
    }

    /// Every live session of a user, newest first: all the pages of ListUserSessions.
    pub(crate) async fn user_sessions(&self, user: &str) -> Result<Rendered, Failure> {
        let user_id = self.user_id(user).await?;
        let mut request = pb::ListUserSessionsRequest {
            user_id: user_id.clone(),
            page_size: 1000,
            page_token: String::new(),
        };
        let mut sessions = Vec::new();
        loop {
            let page = self
                .client
                .clone()
                .list_user_sessions(self.request(request.clone()))
                .await?
                .into_inner();
            sessions.extend(page.sessions);
            if page.next_page_token.is_empty() {
                return Ok(render::sessions(&format!("user {user_id}"), &sessions));
            }
            request.page_token = page.next_page_token;
        }
    }

    async fn list_users(&self, list: ListUsers) -> Result<Rendered, Failure> {
        let suspended = match (list.suspended, list.active) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        let mut request = pb::ListUsersRequest {
            page_size: list.page_size.unwrap_or(0),
            page_token: list.page_token.unwrap_or_default(),
            email_prefix: list.email_prefix.unwrap_or_default(),
            role: list.role.unwrap_or_default(),
            suspended,
        };
        let mut users = Vec::new();
        loop {
            let page = self
                .client
                .clone()
                .list_users(self.request(request.clone()))
                .await?
                .into_inner();
            users.extend(page.users);
            if !list.all || page.next_page_token.is_empty() {
                return Ok(render::users(&users, &page.next_page_token));
            }
            request.page_token = page.next_page_token;
        }
    }

    async fn import(&self, path: &Path, batch_size: u32) -> Result<Rendered, Failure> {
        let file = std::fs::File::open(path)
            .map_err(|error| Failure::Usage(format!("cannot read {}: {error}", path.display())))?;
        let mut rows: Vec<(usize, Result<pb::ImportedUser, String>)> = Vec::new();
        for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|error| {
                Failure::Usage(format!("cannot read {}: {error}", path.display()))
            })?;
            if !line.trim().is_empty() {
                rows.push((index + 1, parse_line(&line)));
            }
        }
        let mut summary = Summary::default();
        let total = rows.len();
        let mut done = 0;
        let progress = Progress::new(total);
        for batch in batches(&rows, usize::try_from(batch_size).unwrap_or(500)) {
            let mut sent = Vec::new();
            let mut users = Vec::new();
            for (line, row) in batch {
                match row {
                    Ok(user) => {
                        sent.push(*line);
                        users.push(user.clone());
                    }
                    Err(reason) => summary.refused.push((*line, reason.clone())),
                }
            }
            if !users.is_empty() {
                let results = self
                    .client
                    .clone()
                    .import_users(self.request(pb::ImportUsersRequest { users }))
                    .await
                    .inspect_err(|_| progress.interrupted(done))?
                    .into_inner()
                    .results;
                for (line, result) in sent.into_iter().zip(results) {
                    summary.add(line, result);
                }
            }
            done += batch.len();
            progress.show(done);
        }
        progress.finish();
        summary.refused.sort_by_key(|(line, _)| *line);
        Ok(summary.render(total))
    }
}

/// The rows in order, cut into batches of at most `size` rows and [`MAX_BATCH_BYTES`].
fn batches<T>(
    rows: &[(T, Result<pb::ImportedUser, String>)],
    size: usize,
) -> Vec<&[(T, Result<pb::ImportedUser, String>)]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, (_, row)) in rows.iter().enumerate() {
        // A repeated field's element costs its length, a tag and a length prefix.
        let cost = row.as_ref().map_or(0, |user| user.encoded_len() + 4);
        if index > start && (index - start >= size || bytes + cost > MAX_BATCH_BYTES) {
            batches.push(&rows[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += cost;
    }
    if start < rows.len() {
        batches.push(&rows[start..]);
    }
    batches
}

/// One line of the file as an `ImportedUser`, or why it is not one (never quoting it).
fn parse_line(line: &str) -> Result<pb::ImportedUser, String> {
    let value: Value = serde_json::from_str(line).map_err(|_| "not a JSON object".to_owned())?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let email = text("email").ok_or("no \"email\" string")?;
    let password_hash = text("password_hash").ok_or("no \"password_hash\" string")?;
    let user_id = match value.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        Some(_) => return Err("\"id\" must be a string or a number".to_owned()),
    };
    let roles = match value.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(roles)) => roles
            .iter()
            .map(|role| role.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or("\"roles\" must be an array of strings")?,
        Some(_) => return Err("\"roles\" must be an array of strings".to_owned()),
    };
    Ok(pb::ImportedUser {
        email,
        user_id,
        roles,
        password_hash,
    })
}

#[derive(Default)]
struct Summary {
    imported: u64,
    duplicates: u64,
    refused: Vec<(usize, String)>,
}

impl Summary {
    fn add(&mut self, line: usize, result: pb::ImportResult) {
        match result.outcome() {
            pb::ImportOutcome::Imported => self.imported += 1,
            pb::ImportOutcome::Duplicate => self.duplicates += 1,
            pb::ImportOutcome::Refused | pb::ImportOutcome::Unspecified => {
                self.refused.push((line, result.reason));
            }
        }
    }

    fn render(self, total: usize) -> Rendered {
        let mut text = format!(
            "{total} line{}: imported {}, skipped {} duplicate{}, refused {}",
            if total == 1 { "" } else { "s" },
            self.imported,
            self.duplicates,
            if self.duplicates == 1 { "" } else { "s" },
            self.refused.len()
        );
        for (line, reason) in &self.refused {
            text.push_str(&format!("\nline {line}: refused: {reason}"));
        }
        let refused: Vec<Value> = self
            .refused
            .iter()
            .map(|(line, reason)| json!({ "line": line, "reason": reason }))
            .collect();
        Rendered {
            text,
            json: json!({
                "lines": total,
                "imported": self.imported,
                "duplicates": self.duplicates,
                "refused": refused,
            }),
        }
    }
}

/// The progress of an import on stderr: a bar redrawn in place at a terminal, else one line
/// per batch (a log stays readable).
struct Progress {
    total: usize,
    terminal: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, done: usize) {
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let filled = (done * 30).checked_div(self.total).unwrap_or(30);
            let bar = format!("{}{}", "#".repeat(filled), ".".repeat(30 - filled.min(30)));
            let _ = write!(stderr, "\rimporting [{bar}] {done}/{}", self.total);
        } else {
            let _ = writeln!(stderr, "imported {done}/{} lines", self.total);
        }
        let _ = stderr.flush();
    }

    fn interrupted(&self, done: usize) {
        self.finish();
        eprintln!(
            "authctl: stopped after {done} of {} lines (those are committed); running the \
             same import again skips them",
            self.total
        );
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_to_the_row_count_and_the_message_size() {
        let row = |hash_len: usize| {
            (
                0,
                Ok(pb::ImportedUser {
                    email: "a@example.com".into(),
                    password_hash: "h".repeat(hash_len),
                    ..Default::default()
                }),
            )
        };
        let small: Vec<_> = (0..10).map(|_| row(60)).collect();
        let sizes: Vec<usize> = batches(&small, 4).iter().map(|batch| batch.len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let large: Vec<_> = (0..10).map(|_| row(20_000)).collect();
        let sizes: Vec<usize> = batches(&large, 500)
            .iter()
            .map(|batch| batch.len())
            .collect();
        assert_eq!(sizes, [2, 2, 2, 2, 2]);
    }

    #[test]
    fn a_line_becomes_an_imported_user_or_a_reason_that_never_quotes_it() {
        let user = parse_line(
            r#"{"email":"a@example.com","id":7,"roles":["admin"],"password_hash":"$2b$10$x"}"#,
        );
        assert_eq!(
            user.map(|user| (user.user_id, user.roles)),
            Ok(("7".to_owned(), vec!["admin".to_owned()]))
        );
        let secret = r#"{"email":"a@example.com","password_hash":42}"#;
        let reason = parse_line(secret).err().unwrap_or_default();
        assert!(
            reason.contains("password_hash") && !reason.contains("42"),
            "{reason}"
        );
        assert_eq!(
            parse_line("$2b$10$abc").err().as_deref(),
            Some("not a JSON object")
        );
    }
}
