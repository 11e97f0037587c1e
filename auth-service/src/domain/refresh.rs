//! Refresh: rotate a refresh token, with reuse detection (RFC 9700 section 4.14.2; the
//! `Refresh` RPC in `proto/auth/v1/auth.proto` states the contract).
//!
//! A session has at most one live refresh token, its *head*. Presenting the head rotates it:
//! a new head replaces it by compare-and-set, so of two concurrent refreshes exactly one wins and
//! the other decides again on fresh state. Presenting any earlier token of the session is a
//! replay: the session ends. One exception: the head's predecessor, within the grace window after
//! its rotation, is issued again (the client lost the response), and the grace window keeps its
//! start, so re-issues cannot stretch it.
//!
//! Nearly every refresh presents the head of a live session, so the head is rotated first,
//! blindly: one write that finds the session by the token and refuses one no longer live. Only
//! when that loses is the session read and the token judged.
//!
//! A suspended or deleted account's session is ended here, judged on the owner as read with the
//! session (before the rotation on the judged path, in the rotation's own statement on the blind
//! one). The rotation's compare-and-set refuses a session revoked meanwhile, so a suspension
//! landing in between still wins.

use std::time::Duration;

use super::{
    AuthCore, AuthError, Timestamp,
    accounts::parse_roles,
    core::Grant,
    model::IssuedTokens,
    opaque_token::{OpaqueToken, TokenHash},
    ports::{RefreshRotation, RevokeReason, SessionRecord, Store},
    revoker::Revoker,
};

/// A refresh that keeps losing compare-and-set races gives up after this many rounds; each lost
/// round means another rotation of the same session succeeded.
const MAX_ROTATION_ATTEMPTS: usize = 32;

/// What a presented refresh token is to the session it was issued for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    /// The live head: rotate it.
    Head,
    /// The head's predecessor within the grace window: issue again, keeping the window's start.
    GracedPredecessor { rotated_at: Timestamp },
    /// Anything else the session ever issued: a replay.
    Spent,
}

/// Judges `presented` (a hash of a token issued for `session`) at `now`.
pub fn judge(
    session: &SessionRecord,
    presented: &TokenHash,
    grace: Duration,
    now: Timestamp,
) -> Presented {
    if session
        .refresh_current_hash
        .as_deref()
        .is_some_and(|head| presented.matches(head))
    {
        return Presented::Head;
    }
    let is_predecessor = session
        .refresh_previous_hash
        .as_deref()
        .is_some_and(|previous| presented.matches(previous));
    match session.refresh_rotated_at {
        Some(rotated_at)
            if !grace.is_zero() && is_predecessor && now.since(rotated_at) <= grace =>
        {
            Presented::GracedPredecessor { rotated_at }
        }
        _ => Presented::Spent,
    }
}

/// A rotation that won: the session as the rotation left it, and the new head.
pub struct Rotated {
    pub session: SessionRecord,
    pub refresh_token: String,
    pub refresh_expires_at: Timestamp,
}

/// How long a refresh token lives, and how long a lost response may be retried.
#[derive(Clone, Copy, Debug)]
pub struct RefreshRules {
    pub token_ttl: Duration,
    pub reuse_grace: Duration,
}

/// Rotates the refresh token `presented`, or ends its session if it was spent.
pub async fn rotate(
    store: &dyn Store,
    revoker: &Revoker,
    rules: RefreshRules,
    presented: &str,
    now: Timestamp,
) -> Result<Rotated, AuthError> {
    if presented.is_empty() {
        return Err(AuthError::MissingCredential);
    }
    let hash = OpaqueToken::hash_of(presented)?;
    // Nearly every presented token is its live session's head: rotate it at once, one write
    // that finds the session by the token and refuses a session that is no longer live.
    if let Some(rotated) = attempt(store, &hash.0, hash.0.clone(), now, rules, now).await? {
        return won(revoker, rotated, now).await;
    }
    // Anything else (a spent token, a retry within the grace window, an ended session, a lost
    // race) is judged on the session as read; a lost race reads it again.
    let mut found = store.find_session_by_refresh_hash(&hash.0).await?;
    for _ in 0..MAX_ROTATION_ATTEMPTS {
        let session = found.take().ok_or(AuthError::TokenInvalid)?;
        session.ensure_live(now)?;
        revoker
            .end_if_owner_barred(&session.id, session.owner, now)
            .await?;
        let head = session
            .refresh_current_hash
            .clone()
            .ok_or(AuthError::TokenInvalid)?;
        let rotated_at = match judge(&session, &hash, rules.reuse_grace, now) {
            Presented::Head => now,
            // The client lost the response to its last refresh: issue again, and let the pair
            // it never received die. The window is not extended.
            Presented::GracedPredecessor { rotated_at } => rotated_at,
            Presented::Spent => {
                revoker
                    .end_session(&session.id, RevokeReason::RefreshTokenReused, now)
                    .await?;
                tracing::warn!(session_id = %session.id, user_id = %session.user_id,
                    "a spent refresh token was presented; session revoked");
                return Err(AuthError::RefreshTokenReused);
            }
        };
        if let Some(rotated) = attempt(store, &hash.0, head, rotated_at, rules, now).await? {
            return won(revoker, rotated, now).await;
        }
        // Another refresh of this session won the race: decide again on fresh state.
        found = store.find_session(&session.id).await?;
    }
    Err(AuthError::Contended)
}

/// One compare-and-set of the session's head `expected_current` to a new token; the session as
/// it left it and the new token, if it won.
async fn attempt(
    store: &dyn Store,
    presented: &[u8],
    expected_current: Vec<u8>,
    rotated_at: Timestamp,
    rules: RefreshRules,
    now: Timestamp,
) -> Result<Option<Rotated>, AuthError> {
    let next = OpaqueToken::generate()?;
    let rotation = RefreshRotation {
        expected_current,
        new_current: next.hash.0,
        new_previous: presented.to_vec(),
        rotated_at,
        refresh_expires_at: now.plus(rules.token_ttl),
        now,
    };
    let Some(session) = store.rotate_refresh(&rotation).await? else {
        return Ok(None);
    };
    // The store keeps the earlier of the token's lifetime and the session's end.
    let refresh_expires_at = session
        .refresh_expires_at
        .unwrap_or(rotation.refresh_expires_at);
    Ok(Some(Rotated {
        session,
        refresh_token: next.text,
        refresh_expires_at,
    }))
}

/// A rotation that won still ends the session of a suspended or deleted owner (read in the
/// rotation's own statement; the suspension's revocation, if it landed first, made the
/// compare-and-set lose).
async fn won(revoker: &Revoker, rotated: Rotated, now: Timestamp) -> Result<Rotated, AuthError> {
    revoker
        .end_if_owner_barred(&rotated.session.id, rotated.session.owner, now)
        .await?;
    Ok(rotated)
}

impl AuthCore {
    /// Rotates a refresh token and mints an access token for its session.
    pub async fn refresh(
        &self,
        presented: &str,
        now: Timestamp,
    ) -> Result<IssuedTokens, AuthError> {
        let rules = RefreshRules {
            token_ttl: self.policy.refresh_token_ttl,
            reuse_grace: self.policy.refresh_reuse_grace,
        };
        let rotated = rotate(self.store.as_ref(), &self.revoker, rules, presented, now).await?;
        let session = &rotated.session;
        let grant = Grant {
            user_id: &session.user_id,
            session_id: &session.id,
            roles: parse_roles(&session.roles),
            session_expires_at: session.expires_at,
            management: session.management,
            authenticated_at: session.created_at,
            service: false,
            actors: Vec::new(),
            email_verified: session.email_verified,
        };
        let (access_token, access_expires_at) = self.mint_access_token(grant, None, now).await?;
        Ok(IssuedTokens {
            access_token,
            access_expires_at,
            refresh_token: rotated.refresh_token,
            refresh_expires_at: rotated.refresh_expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        model::{Revocation, SessionKind},
        ports::{NewSession, UserRecord},
        testing::{MemoryStore, revoker},
    };

    const GRACE: Duration = Duration::from_secs(10);
    const RULES: RefreshRules = RefreshRules {
        token_ttl: Duration::from_secs(3600),
        reuse_grace: GRACE,
    };

    fn at(seconds: u64) -> Timestamp {
        Timestamp::from_millis(1_000_000).plus(Duration::from_secs(seconds))
    }

    /// A user with one token session; returns the session id and its first refresh token.
    async fn session(store: &MemoryStore) -> Result<(String, String), AuthError> {
        store
            .insert_user(&UserRecord {
                id: "u1".into(),
                email: "u1@example.com".into(),
                email_key: "u1@example.com".into(),
                password_hash: String::new(),
                roles: String::new(),
                created_at: at(0),
                suspended_at: None,
            })
            .await?;
        let token = OpaqueToken::generate()?;
        store
            .insert_session(&NewSession {
                id: "s1".into(),
                user_id: "u1".into(),
                kind: SessionKind::Tokens,
                session_token_hash: None,
                refresh_token_hash: Some(token.hash.0),
                refresh_expires_at: Some(at(3600)),
                created_at: at(0),
                idle_timeout_ms: 3_600_000,
                expires_at: at(86_400),
                user_agent: String::new(),
                peer_address: String::new(),
                management: false,
            })
            .await?;
        Ok(("s1".into(), token.text))
    }

    #[tokio::test]
    async fn the_head_rotates_and_then_it_is_the_predecessor() -> Result<(), AuthError> {
        let (store, news, revoker) = revoker();
        let (session_id, first) = session(&store).await?;
        let second = rotate(store.as_ref(), &revoker, RULES, &first, at(1)).await?;
        let stored = store.session(&session_id).ok_or(AuthError::TokenInvalid)?;
        let head = OpaqueToken::hash_of(&second.refresh_token)?;
        assert_eq!(stored.refresh_current_hash.as_deref(), Some(&head.0[..]));
        assert_eq!(
            judge(&stored, &OpaqueToken::hash_of(&first)?, GRACE, at(2)),
            Presented::GracedPredecessor { rotated_at: at(1) }
        );
        assert_eq!(judge(&stored, &head, GRACE, at(2)), Presented::Head);
        assert!(news.announced().is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn reissuing_the_predecessor_never_extends_the_grace_window() -> Result<(), AuthError> {
        let (store, _news, revoker) = revoker();
        let (session_id, first) = session(&store).await?;
        rotate(store.as_ref(), &revoker, RULES, &first, at(100)).await?;
        // A client that lost the answer retries within the window, twice.
        rotate(store.as_ref(), &revoker, RULES, &first, at(105)).await?;
        rotate(store.as_ref(), &revoker, RULES, &first, at(110)).await?;
        let stored = store.session(&session_id).ok_or(AuthError::TokenInvalid)?;
        assert_eq!(stored.refresh_rotated_at, Some(at(100)));
        // Ten seconds after the *first* rotation the predecessor is spent, however often it
        // was re-issued since.
        let late = rotate(store.as_ref(), &revoker, RULES, &first, at(111)).await;
        assert!(matches!(late, Err(AuthError::RefreshTokenReused)));
        Ok(())
    }

    #[tokio::test]
    async fn a_spent_token_ends_the_session_and_every_token_of_it() -> Result<(), AuthError> {
        let (store, news, revoker) = revoker();
        let (session_id, first) = session(&store).await?;
        let second = rotate(store.as_ref(), &revoker, RULES, &first, at(1)).await?;
        let third = rotate(
            store.as_ref(),
            &revoker,
            RULES,
            &second.refresh_token,
            at(2),
        )
        .await?;
        // `first` is two rotations old: no grace, whatever the clock says.
        let replay = rotate(store.as_ref(), &revoker, RULES, &first, at(3)).await;
        assert!(matches!(replay, Err(AuthError::RefreshTokenReused)));
        assert_eq!(
            news.announced(),
            [Revocation::Session {
                session_id: session_id.clone(),
                user_id: "u1".into(),
                revoked_at: at(3),
            }]
        );
        let head = rotate(store.as_ref(), &revoker, RULES, &third.refresh_token, at(4)).await;
        assert!(matches!(head, Err(AuthError::SessionRevoked)));
        Ok(())
    }

    #[tokio::test]
    async fn without_grace_a_repeated_refresh_is_a_replay() -> Result<(), AuthError> {
        let (store, _news, revoker) = revoker();
        let (_, first) = session(&store).await?;
        let strict = RefreshRules {
            reuse_grace: Duration::ZERO,
            ..RULES
        };
        rotate(store.as_ref(), &revoker, strict, &first, at(1)).await?;
        let again = rotate(store.as_ref(), &revoker, strict, &first, at(1)).await;
        assert!(matches!(again, Err(AuthError::RefreshTokenReused)));
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_refreshes_leave_exactly_one_live_head() -> Result<(), AuthError> {
        let (store, _news, revoker) = revoker();
        let (session_id, first) = session(&store).await?;
        let attempts = (0..16).map(|_| rotate(store.as_ref(), &revoker, RULES, &first, at(1)));
        let issued: Vec<Rotated> = futures_join_all(attempts).await?;
        let stored = store.session(&session_id).ok_or(AuthError::TokenInvalid)?;
        let heads = issued
            .iter()
            .filter(|rotated| {
                OpaqueToken::hash_of(&rotated.refresh_token).is_ok_and(|hash| {
                    stored
                        .refresh_current_hash
                        .as_deref()
                        .is_some_and(|head| hash.matches(head))
                })
            })
            .count();
        assert_eq!(
            heads,
            1,
            "exactly one of {} pairs is the head",
            issued.len()
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_suspended_owners_session_ends_even_when_its_head_rotates() -> Result<(), AuthError> {
        let (store, news, revoker) = revoker();
        let (session_id, first) = session(&store).await?;
        // The account is marked suspended, and the suspension's own revocation has not landed:
        // the blind rotation wins, and its owner's standing, read with it, still ends the session.
        assert!(store.suspend_user("u1", at(1)).await?);
        let refused = rotate(store.as_ref(), &revoker, RULES, &first, at(2)).await;
        assert!(matches!(refused, Err(AuthError::AccountSuspended)));
        let stored = store.session(&session_id).ok_or(AuthError::TokenInvalid)?;
        assert_eq!(stored.revoked_at, Some(at(2)));
        assert_eq!(news.announced().len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_session_idle_for_its_refresh_lifetime_cannot_refresh() -> Result<(), AuthError> {
        let (store, _news, revoker) = revoker();
        let (_, first) = session(&store).await?;
        // The session's idle timeout is the refresh token lifetime: an hour without a refresh.
        let late = rotate(store.as_ref(), &revoker, RULES, &first, at(3600)).await;
        assert!(matches!(late, Err(AuthError::SessionExpired)));
        Ok(())
    }

    /// Runs the futures concurrently on this task, in order of completion.
    async fn futures_join_all<F: std::future::Future<Output = Result<Rotated, AuthError>>>(
        futures: impl Iterator<Item = F>,
    ) -> Result<Vec<Rotated>, AuthError> {
        let mut set = Vec::new();
        for future in futures {
            set.push(Box::pin(future));
        }
        let mut results = Vec::new();
        let mut pending: Vec<_> = set.into_iter().map(Some).collect();
        std::future::poll_fn(|cx| {
            for slot in pending.iter_mut() {
                if let Some(future) = slot
                    && let std::task::Poll::Ready(result) = future.as_mut().poll(cx)
                {
                    results.push(result);
                    *slot = None;
                }
            }
            if pending.iter().all(Option::is_none) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        results.into_iter().collect()
    }
}
