//! Test doubles for the rules' unit tests: a [`Store`] kept in memory with the same semantics as
//! the SQL one (`store/sql/`; both are held to them by the API suite, which runs on the real
//! databases), and [`RevocationNews`] that records what was announced. With them a rule (say,
//! refresh-token reuse) is tested without a database, a key ring or a hashing pool.
#![cfg(test)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;

use super::{
    Timestamp,
    model::Revocation,
    ports::{
        FanoutEvent, KeyRotation, KeyRotationOutcome, LoggedChange, NewSession, OwnerStanding,
        PrivateKeyReplacement, RefreshRotation, RevocationNews, RevokeReason, RevokedSession,
        SessionRecord, SigningKeyRecord, Store, StoreError, UserRecord,
    },
    ports::{
        ImportOutcome, Keyset, LapsedGeneration, ServiceClientRecord, ServiceRotation,
        TOMBSTONE_KEY_PREFIX, UserFilter,
    },
    revoker::Revoker,
};

mod changes;

#[derive(Default)]
struct Tables {
    users: Vec<UserRecord>,
    /// User id -> every session up to this instant was revoked at once.
    users_revoked_before: HashMap<String, Timestamp>,
    sessions: Vec<SessionRecord>,
    /// Every refresh token hash ever issued -> its session.
    refresh_tokens: HashMap<Vec<u8>, String>,
    keys: Vec<SigningKeyRecord>,
    /// The change log, `seq` from 1.
    changes: Vec<LoggedChange>,
}

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    fn tables(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
        self.tables
            .lock()
            .map_err(|_| StoreError::Other("memory store poisoned".into()))
    }

    /// The session with its owner's standing as of now, as the SQL stores read it (a join).
    pub fn session(&self, session_id: &str) -> Option<SessionRecord> {
        let tables = self.tables.lock().ok()?;
        let mut session = tables.sessions.iter().find(|s| s.id == session_id)?.clone();
        if let Some(owner) = tables.users.iter().find(|u| u.id == session.user_id) {
            session.owner = owner.standing();
        }
        Some(session)
    }
}

fn revoke(session: &mut SessionRecord, now: Timestamp) -> RevokedSession {
    session.revoked_at = Some(now);
    RevokedSession {
        session_id: session.id.clone(),
        user_id: session.user_id.clone(),
        revoked_at: now,
    }
}

fn is_live(session: &SessionRecord, now: Timestamp) -> bool {
    session.revoked_at.is_none() && session.expires_at > now && now < session.ends_at()
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        if tables.users.iter().any(|u| u.email_key == user.email_key) {
            return Err(StoreError::Conflict);
        }
        tables.users.push(user.clone());
        Ok(())
    }

    async fn find_user_by_email_key(&self, key: &str) -> Result<Option<UserRecord>, StoreError> {
        let tables = self.tables()?;
        Ok(tables.users.iter().find(|u| u.email_key == key).cloned())
    }

    async fn find_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        let tables = self.tables()?;
        Ok(tables.users.iter().find(|u| u.id == user_id).cloned())
    }

    async fn update_password_hash(
        &self,
        user_id: &str,
        expected: &str,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let mut tables = self.tables()?;
        let user = tables
            .users
            .iter_mut()
            .find(|u| u.id == user_id && u.password_hash == expected);
        let found = user.is_some();
        if let Some(user) = user {
            user.password_hash = hash.to_owned();
        }
        Ok(found)
    }

    async fn set_user_roles(
        &self,
        user_id: &str,
        roles: &str,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tables = self.tables()?;
        let user = tables.users.iter_mut().find(|u| u.id == user_id);
        let found = user.map(|user| user.roles = roles.to_owned()).is_some();
        if found {
            let user_id = user_id.to_owned();
            tables.log(FanoutEvent::RolesChanged { user_id });
        }
        Ok(found)
    }

    async fn suspend_user(&self, user_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut tables = self.tables()?;
        let user = tables.users.iter_mut().find(|u| u.id == user_id);
        Ok(user
            .map(|user| user.suspended_at = user.suspended_at.or(Some(now)))
            .is_some())
    }

    async fn reactivate_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut tables = self.tables()?;
        let user = tables.users.iter_mut().find(|u| u.id == user_id);
        Ok(user.map(|user| user.suspended_at = None).is_some())
    }

    async fn insert_session(&self, new: &NewSession) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        let (email, roles) = tables
            .users
            .iter()
            .find(|u| u.id == new.user_id)
            .map(|u| (u.email.clone(), u.roles.clone()))
            .ok_or_else(|| StoreError::Other("no such user".into()))?;
        if let Some(hash) = &new.refresh_token_hash {
            tables.refresh_tokens.insert(hash.clone(), new.id.clone());
        }
        tables.sessions.push(SessionRecord {
            id: new.id.clone(),
            user_id: new.user_id.clone(),
            email,
            roles,
            kind: new.kind,
            session_token_hash: new.session_token_hash.clone(),
            created_at: new.created_at,
            last_seen_at: new.created_at,
            idle_timeout_ms: new.idle_timeout_ms,
            expires_at: new.expires_at,
            refresh_current_hash: new.refresh_token_hash.clone(),
            refresh_previous_hash: None,
            refresh_rotated_at: None,
            refresh_expires_at: new.refresh_expires_at,
            revoked_at: None,
            user_agent: new.user_agent.clone(),
            peer_address: new.peer_address.clone(),
            management: new.management,
            email_verified: false,
            owner: OwnerStanding::Active,
        });
        Ok(())
    }

    async fn evict_sessions_beyond(
        &self,
        user_id: &str,
        keep: u32,
        now: Timestamp,
    ) -> Result<Vec<RevokedSession>, StoreError> {
        let mut tables = self.tables()?;
        let mut live: Vec<&mut SessionRecord> = tables
            .sessions
            .iter_mut()
            .filter(|s| s.user_id == user_id && s.revoked_at.is_none())
            .collect();
        live.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let revoked: Vec<RevokedSession> = live
            .into_iter()
            .skip(keep)
            .map(|s| revoke(s, now))
            .collect();
        tables.log_revoked(&revoked);
        Ok(revoked)
    }

    async fn find_session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        // A real read waits for the database: let concurrent callers interleave here.
        tokio::task::yield_now().await;
        Ok(self.session(session_id))
    }

    async fn find_session_by_token_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<SessionRecord>, StoreError> {
        let tables = self.tables()?;
        let found = tables
            .sessions
            .iter()
            .find(|s| s.session_token_hash.as_deref() == Some(hash));
        Ok(found.cloned())
    }

    async fn find_session_by_refresh_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<SessionRecord>, StoreError> {
        tokio::task::yield_now().await;
        let session_id = self.tables()?.refresh_tokens.get(hash).cloned();
        Ok(session_id.and_then(|id| self.session(&id)))
    }

    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        tokio::task::yield_now().await;
        let mut tables = self.tables()?;
        let Some(session_id) = tables
            .refresh_tokens
            .get(&rotation.expected_current)
            .cloned()
        else {
            return Ok(None);
        };
        let now = rotation.now;
        let Some(session) = tables.sessions.iter_mut().find(|s| {
            s.id == session_id
                && s.ensure_live(now).is_ok()
                && [&rotation.expected_current, &rotation.new_current]
                    .iter()
                    .any(|head| s.refresh_current_hash.as_deref() == Some(&head[..]))
        }) else {
            return Ok(None);
        };
        session.refresh_current_hash = Some(rotation.new_current.clone());
        session.refresh_previous_hash = Some(rotation.new_previous.clone());
        session.refresh_rotated_at = Some(rotation.rotated_at);
        session.refresh_expires_at = Some(rotation.refresh_expires_at.min(session.expires_at));
        session.last_seen_at = now;
        tables
            .refresh_tokens
            .insert(rotation.new_current.clone(), session_id.clone());
        drop(tables);
        Ok(self.session(&session_id))
    }

    async fn touch_session(&self, session_id: &str, now: Timestamp) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        if let Some(session) = tables.sessions.iter_mut().find(|s| s.id == session_id) {
            session.last_seen_at = session.last_seen_at.max(now);
        }
        Ok(())
    }

    async fn revoke_session(
        &self,
        session_id: &str,
        _reason: RevokeReason,
        now: Timestamp,
    ) -> Result<Option<RevokedSession>, StoreError> {
        let mut tables = self.tables()?;
        let live = tables
            .sessions
            .iter_mut()
            .find(|s| s.id == session_id && s.revoked_at.is_none());
        let revoked = live.map(|session| revoke(session, now));
        tables.log_revoked(revoked.as_slice());
        Ok(revoked)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        _reason: RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<RevokedSession>, StoreError> {
        let mut tables = self.tables()?;
        let revoked: Vec<RevokedSession> = tables
            .sessions
            .iter_mut()
            .filter(|s| s.user_id == user_id && s.revoked_at.is_none())
            .filter(|s| Some(s.id.as_str()) != keep)
            .map(|s| revoke(s, now))
            .collect();
        tables.log_revoked(&revoked);
        if keep.is_none() {
            tables.users_revoked_before.insert(user_id.to_owned(), now);
            tables.log(FanoutEvent::Revoked(Revocation::User {
                user_id: user_id.to_owned(),
                revoked_before: now,
            }));
        }
        Ok(revoked)
    }

    async fn count_live_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        let tables = self.tables()?;
        let live = tables.sessions.iter().filter(|s| is_live(s, now)).count();
        Ok(u64::try_from(live).unwrap_or(u64::MAX))
    }

    async fn revocations_since(&self, since: Timestamp) -> Result<Vec<RevokedSession>, StoreError> {
        let tables = self.tables()?;
        let mut revoked: Vec<RevokedSession> = tables
            .sessions
            .iter()
            .filter_map(|s| {
                let at = s.revoked_at.filter(|at| *at >= since)?;
                Some(RevokedSession {
                    session_id: s.id.clone(),
                    user_id: s.user_id.clone(),
                    revoked_at: at,
                })
            })
            .collect();
        revoked.sort_by(|a, b| (a.revoked_at, &a.session_id).cmp(&(b.revoked_at, &b.session_id)));
        Ok(revoked)
    }

    async fn user_revocations_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let tables = self.tables()?;
        let mut users: Vec<(String, Timestamp)> = tables
            .users_revoked_before
            .iter()
            .filter(|(_, at)| **at >= since)
            .map(|(user, at)| (user.clone(), *at))
            .collect();
        users.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        Ok(users)
    }

    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<LoggedChange>, StoreError> {
        Ok(self.tables()?.changes_after(after, limit))
    }

    async fn changes_among(&self, seqs: &[i64]) -> Result<Vec<LoggedChange>, StoreError> {
        Ok(self.tables()?.changes_among(seqs))
    }

    async fn last_change_seq(&self) -> Result<i64, StoreError> {
        Ok(self.tables()?.changes.last().map_or(0, |c| c.seq))
    }

    async fn list_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
        before: Option<&Keyset>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let tables = self.tables()?;
        let mut live: Vec<SessionRecord> = tables
            .sessions
            .iter()
            .filter(|s| s.user_id == user_id && is_live(s, now))
            .filter(|s| before.is_none_or(|at| (s.created_at, &s.id) < (at.created_at, &at.id)))
            .cloned()
            .collect();
        live.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        live.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(live)
    }

    // Listing and importing accounts are exercised end to end by the API suite
    // (`tests/api/account_admin.rs`) on the real databases.
    async fn list_users(
        &self,
        _: &UserFilter,
        _: Option<&Keyset>,
        _: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        Err(unkept())
    }

    async fn delete_user(&self, user_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut tables = self.tables()?;
        let _ = now;
        let user = tables
            .users
            .iter_mut()
            .find(|u| u.id == user_id && !u.is_deleted());
        let found = user.is_some();
        if let Some(user) = user {
            user.email = String::new();
            user.email_key = format!("{TOMBSTONE_KEY_PREFIX}{user_id}");
            user.password_hash = String::new();
            user.roles = String::new();
        }
        Ok(found)
    }

    async fn import_users(&self, _: &[UserRecord]) -> Result<Vec<ImportOutcome>, StoreError> {
        Err(unkept())
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        Ok(self.tables()?.keys.clone())
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        let seq = tables.keys.iter().map(|k| k.seq).max().unwrap_or(0) + 1;
        tables.keys.push(SigningKeyRecord { seq, ..key.clone() });
        Ok(())
    }

    async fn rotate_signing_key(
        &self,
        rotation: &KeyRotation<'_>,
    ) -> Result<KeyRotationOutcome, StoreError> {
        let now = rotation.now;
        let mut tables = self.tables()?;
        if let Some(kid) = rotation.revoke {
            let Some(key) = tables.keys.iter_mut().find(|k| k.kid == kid) else {
                return Ok(KeyRotationOutcome::UnknownKid);
            };
            if key.revoked_at.replace(now).is_some() {
                return Ok(KeyRotationOutcome::AlreadyRevoked);
            }
            (key.private_pkcs8, key.drop_after) = (None, Some(now));
        }
        // As the SQL does: pending keys are superseded, unretired ones retire with the successor.
        for key in tables.keys.iter_mut().filter(|k| k.private_pkcs8.is_some()) {
            if key.activates_at > now {
                (key.private_pkcs8, key.retires_at) = (None, Some(key.activates_at));
                key.drop_after = Some(now);
            } else if key.revoked_at.is_none() && key.retires_at.is_none_or(|at| at > now) {
                key.retires_at = Some(rotation.successor.activates_at);
                key.drop_after = Some(rotation.drop_after);
            }
        }
        let seq = tables.keys.iter().map(|k| k.seq).max().unwrap_or(0) + 1;
        tables.keys.push(SigningKeyRecord {
            seq,
            ..rotation.successor.clone()
        });
        Ok(KeyRotationOutcome::Rotated)
    }

    async fn erase_expired_signing_keys(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut erased = 0;
        for key in self.tables()?.keys.iter_mut() {
            if key.private_pkcs8.is_some() && key.drop_after.is_some_and(|at| at < now) {
                key.private_pkcs8 = None;
                erased += 1;
            }
        }
        Ok(erased)
    }

    async fn replace_private_keys(
        &self,
        replacements: &[PrivateKeyReplacement],
    ) -> Result<bool, StoreError> {
        let mut tables = self.tables()?;
        let unchanged = replacements.iter().all(|r| {
            tables.keys.iter().any(|k| {
                k.kid == r.kid && k.private_pkcs8.as_deref() == Some(r.expected.as_slice())
            })
        });
        if !unchanged {
            return Ok(false);
        }
        for r in replacements {
            for key in tables.keys.iter_mut().filter(|k| k.kid == r.kid) {
                key.private_pkcs8 = Some(r.replacement.clone());
            }
        }
        Ok(true)
    }

    // Service clients are exercised end to end by the API suite (`tests/api/services.rs`) on
    // the real databases; no unit test needs them here.
    async fn insert_service_client(
        &self,
        _user: &UserRecord,
        _client: &ServiceClientRecord,
        _generation: &NewSession,
    ) -> Result<(), StoreError> {
        Err(unkept())
    }

    async fn find_service_client(
        &self,
        _: &str,
    ) -> Result<Option<ServiceClientRecord>, StoreError> {
        Ok(None)
    }

    async fn find_service_client_by_mtls(
        &self,
        _: &str,
    ) -> Result<Option<ServiceClientRecord>, StoreError> {
        Ok(None)
    }

    async fn list_service_clients(&self) -> Result<Vec<ServiceClientRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn rotate_service_secret(&self, _: &ServiceRotation<'_>) -> Result<bool, StoreError> {
        Err(unkept())
    }

    async fn lapsed_service_generations(
        &self,
        _: Timestamp,
    ) -> Result<Vec<LapsedGeneration>, StoreError> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn unkept() -> StoreError {
    StoreError::Other(
        "the in-memory test store keeps no service clients nor account listings".into(),
    )
}

/// Remembers every announcement, in order.
#[derive(Default)]
pub struct RecordingNews {
    announced: Mutex<Vec<Revocation>>,
}

impl RecordingNews {
    pub fn announced(&self) -> Vec<Revocation> {
        self.announced
            .lock()
            .map(|announced| announced.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl RevocationNews for RecordingNews {
    async fn announce(&self, revocations: Vec<Revocation>) {
        if let Ok(mut announced) = self.announced.lock() {
            announced.extend(revocations);
        }
    }

    async fn roles_changed(&self, _user_id: &str) {}

    fn keys_changed(&self, _jwks_json: String) {}
    async fn signing_key_revoked(&self, _kid: String) {}
}

/// A store, the news it announces to, and the revoker between them.
pub fn revoker() -> (Arc<MemoryStore>, Arc<RecordingNews>, Revoker) {
    let store = Arc::new(MemoryStore::default());
    let news = Arc::new(RecordingNews::default());
    let revoker = Revoker::new(store.clone(), news.clone());
    (store, news, revoker)
}
