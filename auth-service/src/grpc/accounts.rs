//! The account-administration RPCs added to `AdminService` (list, delete, set a password,
//! import): thin conversions between the protobuf messages and `domain/account_admin.rs`.

use auth_api::v1 as pb;
use tonic::Status;

use super::{admin::user, convert, to_status};
use crate::domain::{
    Timestamp,
    account_admin::UserQuery,
    admin::AdminCore,
    import::{ImportRow, RowOutcome},
    model::Principal,
    paging::{Listing, PageRequest},
};

pub async fn list_users(
    admin: &AdminCore,
    caller: &Principal,
    request: pb::ListUsersRequest,
) -> Result<pb::ListUsersResponse, Status> {
    // Authorisation first: a non-admin learns nothing from a malformed token.
    let page = PageRequest::parse(Listing::Users, request.page_size, &request.page_token);
    let page = match page {
        Ok(page) => page,
        Err(error) if caller.is_admin() => return Err(to_status(error)),
        Err(_) => PageRequest::parse(Listing::Users, 0, "").map_err(to_status)?,
    };
    let query = UserQuery {
        email_prefix: &request.email_prefix,
        role: &request.role,
        suspended: request.suspended,
    };
    let page = admin
        .list_users(caller, query, &page)
        .await
        .map_err(to_status)?;
    Ok(pb::ListUsersResponse {
        users: page.items.into_iter().map(user).collect(),
        next_page_token: page.next_page_token,
    })
}

pub async fn delete_user(
    admin: &AdminCore,
    caller: &Principal,
    request: pb::DeleteUserRequest,
    now: Timestamp,
) -> Result<pb::DeleteUserResponse, Status> {
    let deletion = admin
        .delete_user(caller, &request.user_id, now)
        .await
        .map_err(to_status)?;
    Ok(pb::DeleteUserResponse {
        revoked_count: convert::count(deletion.revoked),
        newly_deleted: deletion.newly_deleted,
    })
}

pub async fn set_password(
    admin: &AdminCore,
    caller: &Principal,
    request: pb::SetPasswordRequest,
    now: Timestamp,
) -> Result<pb::SetPasswordResponse, Status> {
    let revoked = admin
        .set_password(caller, &request.user_id, request.password, now)
        .await
        .map_err(to_status)?;
    Ok(pb::SetPasswordResponse {
        revoked_count: convert::count(revoked),
    })
}

pub async fn import_users(
    admin: &AdminCore,
    caller: &Principal,
    request: pb::ImportUsersRequest,
    now: Timestamp,
) -> Result<pb::ImportUsersResponse, Status> {
    let rows = request
        .users
        .into_iter()
        .map(|row| ImportRow {
            email: row.email,
            id: Some(row.user_id).filter(|id| !id.is_empty()),
            roles: row.roles,
            password_hash: row.password_hash,
        })
        .collect();
    let outcomes = admin
        .import_users(caller, rows, now)
        .await
        .map_err(to_status)?;
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            RowOutcome::Imported { user_id } => pb::ImportResult {
                outcome: pb::ImportOutcome::Imported.into(),
                user_id,
                reason: String::new(),
            },
            RowOutcome::Duplicate => pb::ImportResult {
                outcome: pb::ImportOutcome::Duplicate.into(),
                user_id: String::new(),
                reason: String::new(),
            },
            RowOutcome::Refused(reason) => pb::ImportResult {
                outcome: pb::ImportOutcome::Refused.into(),
                user_id: String::new(),
                reason: reason.to_owned(),
            },
        })
        .collect();
    Ok(pb::ImportUsersResponse { results })
}
