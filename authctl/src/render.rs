//! How `authctl` shows answers: every command produces both a text rendering (aligned tables for
//! lists, `key  value` blocks for one record) and a JSON value with proto3 JSON field names
//! (lowerCamelCase, RFC 3339 timestamps), so `--json` output matches what grpcurl prints.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_api::v1 as pb;
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A command's answer in both forms.
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    pub json: Value,
}

/// User-agent strings are cut to this many characters in tables (JSON has them whole).
const MAX_AGENT_CHARS: usize = 40;

fn system_time(timestamp: &prost_types::Timestamp) -> Option<SystemTime> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    let seconds = u64::try_from(timestamp.seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

/// `2026-11-23T17:56:17Z`, or `-` when unset.
pub fn plural(count: u32) -> &'static str {
    if count == 1 { "" } else { "s" }
}

pub fn time_text(timestamp: Option<&prost_types::Timestamp>) -> String {
    timestamp
        .and_then(system_time)
        .map(|at| humantime::format_rfc3339_seconds(at).to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// RFC 3339 with milliseconds, or `null` when unset.
pub fn time_json(timestamp: Option<&prost_types::Timestamp>) -> Value {
    timestamp.and_then(system_time).map_or(Value::Null, |at| {
        Value::String(humantime::format_rfc3339_millis(at).to_string())
    })
}

/// Columns separated by two spaces, each as wide as its widest cell; the last is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|cell| (*cell).to_owned()).collect();
    std::iter::once(&header)
        .chain(rows)
        .map(|row| {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate() {
                if index > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if index + 1 < row.len() {
                    let pad = widths[index].saturating_sub(cell.chars().count());
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('\u{2026}');
    cut
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

pub fn user_json(user: &pb::User) -> Value {
    json!({
        "userId": user.user_id,
        "email": user.email,
        "roles": user.roles,
        "createdAt": time_json(user.created_at.as_ref()),
        "suspended": user.suspended,
        "suspendedAt": time_json(user.suspended_at.as_ref()),
    })
}

/// One account as an aligned `key  value` block.
pub fn user(user: &pb::User) -> Rendered {
    let roles = if user.roles.is_empty() {
        "(none)".to_owned()
    } else {
        user.roles.join(", ")
    };
    let status = if user.suspended {
        format!("suspended since {}", time_text(user.suspended_at.as_ref()))
    } else {
        "active".to_owned()
    };
    let rows = [
        ("user id", user.user_id.clone()),
        ("email", user.email.clone()),
        ("roles", roles),
        ("created", time_text(user.created_at.as_ref())),
        ("status", status),
    ];
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let text = rows
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}"))
        .collect::<Vec<_>>()
        .join("\n");
    Rendered {
        text,
        json: user_json(user),
    }
}

/// Accounts as a table, and the token of the next page when there is one.
pub fn users(users: &[pb::User], next_page_token: &str) -> Rendered {
    let json = json!({
        "users": users.iter().map(user_json).collect::<Vec<_>>(),
        "nextPageToken": next_page_token,
    });
    let mut text = if users.is_empty() {
        "no accounts".to_owned()
    } else {
        let rows: Vec<Vec<String>> = users
            .iter()
            .map(|user| {
                vec![
                    user.user_id.clone(),
                    user.email.clone(),
                    or_dash(&user.roles.join(",")),
                    time_text(user.created_at.as_ref()),
                    if user.suspended {
                        "suspended"
                    } else {
                        "active"
                    }
                    .to_owned(),
                ]
            })
            .collect();
        table(&["USER", "EMAIL", "ROLES", "CREATED", "STATUS"], &rows)
    };
    if !next_page_token.is_empty() {
        text.push_str(&format!(
            "\nmore: authctl user list --page-token {next_page_token} (or --all)"
        ));
    }
    Rendered { text, json }
}

fn kind_text(session: &pb::SessionInfo) -> &'static str {
    match session.kind() {
        pb::CredentialKind::Session => "session",
        pb::CredentialKind::Tokens | pb::CredentialKind::Unspecified => "tokens",
    }
}

fn session_json(session: &pb::SessionInfo) -> Value {
    json!({
        "sessionId": session.session_id,
        "userId": session.user_id,
        "kind": session.kind().as_str_name(),
        "createdAt": time_json(session.created_at.as_ref()),
        "lastSeenAt": time_json(session.last_seen_at.as_ref()),
        "expiresAt": time_json(session.expires_at.as_ref()),
        "userAgent": session.user_agent,
        "peerAddress": session.peer_address,
        "current": session.current,
    })
}

/// A user's sessions as a table, newest first (the server's order).
pub fn sessions(user_label: &str, sessions: &[pb::SessionInfo]) -> Rendered {
    let json = json!({ "sessions": sessions.iter().map(session_json).collect::<Vec<_>>() });
    if sessions.is_empty() {
        return Rendered {
            text: format!("no live sessions for {user_label}"),
            json,
        };
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|session| {
            let mut id = session.session_id.clone();
            if session.current {
                id.push_str(" *");
            }
            vec![
                id,
                kind_text(session).to_owned(),
                time_text(session.created_at.as_ref()),
                time_text(session.last_seen_at.as_ref()),
                time_text(session.expires_at.as_ref()),
                or_dash(&session.peer_address),
                or_dash(&cut(&session.user_agent, MAX_AGENT_CHARS)),
            ]
        })
        .collect();
    let mut text = table(
        &[
            "SESSION",
            "KIND",
            "CREATED",
            "LAST SEEN",
            "EXPIRES",
            "PEER",
            "USER AGENT",
        ],
        &rows,
    );
    if sessions.iter().any(|session| session.current) {
        text.push_str("\n* the session this command is using");
    }
    Rendered { text, json }
}

/// `PermissionDenied` -> `PERMISSION_DENIED`: the canonical gRPC code name.
pub fn code_name(code: Code) -> String {
    let camel = format!("{code:?}");
    let mut name = String::with_capacity(camel.len() + 4);
    for (index, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// A refused call: the `ErrorInfo` reason (or the bare code when the server sent none) and the
/// server's message.
pub fn status_error(status: &Status) -> Rendered {
    let code = code_name(status.code());
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_else(|| code.clone());
    let message = if status.message().is_empty() {
        status.code().description().to_owned()
    } else {
        status.message().to_owned()
    };
    Rendered {
        text: format!("{reason}: {message}"),
        json: json!({ "error": { "code": code, "reason": reason, "message": message } }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn tables_align_every_column_but_the_last() {
        let text = table(
            &["ID", "KIND", "AGENT"],
            &[
                vec!["a".into(), "tokens".into(), "x".into()],
                vec!["longer-id".into(), "session".into(), "y z".into()],
            ],
        );
        assert_eq!(
            text,
            "ID         KIND     AGENT\n\
             a          tokens   x\n\
             longer-id  session  y z"
        );
    }

    #[test]
    fn sessions_render_as_a_table_and_as_proto3_json() {
        let session = pb::SessionInfo {
            session_id: "s1".into(),
            kind: pb::CredentialKind::Session.into(),
            created_at: at(1_700_000_000),
            last_seen_at: at(1_700_000_060),
            expires_at: at(1_702_592_000),
            user_agent: "a".repeat(60),
            current: true,
            user_id: "u1".into(),
            peer_address: "127.0.0.1:5000".into(),
        };
        let rendered = sessions("u1", std::slice::from_ref(&session));
        let lines: Vec<&str> = rendered.text.lines().collect();
        assert!(lines[0].starts_with("SESSION  KIND     CREATED"));
        assert!(lines[1].starts_with("s1 *     session  2023-11-14T22:13:20Z"));
        assert!(lines[1].ends_with('\u{2026}'));
        assert_eq!(
            rendered.json["sessions"][0]["kind"],
            "CREDENTIAL_KIND_SESSION"
        );
        assert_eq!(
            rendered.json["sessions"][0]["createdAt"],
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            rendered.json["sessions"][0]["userAgent"]
                .as_str()
                .map(str::len),
            Some(60)
        );
        assert_eq!(sessions("u1", &[]).text, "no live sessions for u1");
    }

    #[test]
    fn a_user_renders_as_a_key_value_block() {
        let rendered = user(&pb::User {
            user_id: "u1".into(),
            email: "a@example.com".into(),
            roles: vec!["admin".into(), "billing".into()],
            created_at: at(0),
            suspended: true,
            suspended_at: at(60),
        });
        assert_eq!(
            rendered.text,
            "user id  u1\n\
             email    a@example.com\n\
             roles    admin, billing\n\
             created  1970-01-01T00:00:00Z\n\
             status   suspended since 1970-01-01T00:01:00Z"
        );
        assert_eq!(rendered.json["suspended"], true);
        assert_eq!(rendered.json["roles"][1], "billing");
    }

    #[test]
    fn errors_show_the_reason_and_the_canonical_code() {
        assert_eq!(code_name(Code::PermissionDenied), "PERMISSION_DENIED");
        assert_eq!(code_name(Code::Ok), "OK");
        let rendered = status_error(&Status::unavailable("down"));
        assert_eq!(rendered.text, "UNAVAILABLE: down");
        assert_eq!(rendered.json["error"]["code"], "UNAVAILABLE");
    }
}
