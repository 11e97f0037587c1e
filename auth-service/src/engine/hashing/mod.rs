//! Password hashing with argon2id, off the async runtime and with bounded concurrency.
//!
//! Every hash runs on a few dedicated threads behind a semaphore: a login storm then queues for
//! hashing permits instead of stalling the threads that serve `Verify`, and memory stays bounded
//! at `memory_kib x permits`. A login for an unknown email verifies against a dummy hash made
//! with the same parameters, so it costs the same time as a wrong password (no enumeration).
//!
//! This module owns the admission: permits, the waiting queue and load shedding. The threads that
//! run the hashes are in `threads`, and argon2id into and out of PHC strings in `phc`.

mod imported;
mod phc;
mod threads;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::Params;
use tokio::sync::Semaphore;

use async_trait::async_trait;

use self::{
    phc::{SALT_BYTES, hash_into_phc, matches_phc},
    threads::HashingThreads,
};
use crate::domain::{AuthError, opaque_token, ports::PasswordHashing};

/// What a shed login is told to wait before retrying.
pub const SHED_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct HashingParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// How many hashes may run at once.
    pub concurrency: usize,
    /// How many logins may wait for a hashing slot; beyond it they are shed (0: no limit).
    pub queue_limit: usize,
}

impl Default for HashingParams {
    /// OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_limit: 64,
        }
    }
}

/// One call's place in the hashing queue, given back when dropped (also when the caller's
/// deadline cancels the wait).
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn join(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::AcqRel);
        Self(waiting)
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    threads: HashingThreads,
    permits: Arc<Semaphore>,
    /// Hashes waiting for a permit (exported as a metric).
    waiting: Arc<AtomicUsize>,
    queue_limit: usize,
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub async fn new(settings: HashingParams) -> Result<Self, AuthError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|error| AuthError::Internal(format!("invalid argon2 parameters: {error}")))?;
        let concurrency = settings.concurrency.max(1);
        let mut hasher = Self {
            params,
            threads: HashingThreads::start(concurrency)?,
            permits: Arc::new(Semaphore::new(concurrency)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_limit: settings.queue_limit,
            dummy_hash: Arc::from(""),
        };
        let unguessable = opaque_token::OpaqueToken::generate()?.text;
        hasher.dummy_hash = Arc::from(hasher.hash(unguessable).await?);
        Ok(hasher)
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let salt = opaque_token::random_bytes::<SALT_BYTES>()?;
        let permit = self.wait_for_slot().await?;
        self.hash_with_permit(password, salt, permit).await
    }

    async fn hash_with_permit(
        &self,
        password: String,
        salt: [u8; SALT_BYTES],
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<String, AuthError> {
        let params = self.params.clone();
        self.threads
            .run(permit, move |memory| {
                hash_into_phc(&params, password.as_bytes(), &salt, memory)
            })
            .await?
    }

    /// Whether `password` matches `stored_hash`. With no stored hash (unknown user) the dummy
    /// hash is checked instead and the answer is always false, after the same amount of work.
    /// When `queue_limit` checks already wait for a hashing slot, answers `Overloaded` at once
    /// instead of queueing (a storm sheds load, it does not pile up). There is no unbounded
    /// check: every caller of a password check is exposed to whoever sends the password.
    pub async fn verify_or_shed(
        &self,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, AuthError> {
        let permit = self.slot_or_shed().await?;
        self.verify_with_permit(password, stored_hash, permit).await
    }

    /// `hash` for an anonymous caller (registration): shed like [`Self::verify_or_shed`].
    pub async fn hash_or_shed(&self, password: String) -> Result<String, AuthError> {
        let salt = opaque_token::random_bytes::<SALT_BYTES>()?;
        let permit = self.slot_or_shed().await?;
        self.hash_with_permit(password, salt, permit).await
    }

    /// A hashing slot now, or a place in the queue while it is below its limit, or `Overloaded`.
    async fn slot_or_shed(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        if self.queue_limit == 0 {
            return self.wait_for_slot().await;
        }
        match self.permits.clone().try_acquire_owned() {
            // A free slot: no queueing, nothing to shed.
            Ok(permit) => return Ok(permit),
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(AuthError::Unavailable(
                    "password hashing is shut down".into(),
                ));
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        // Join the queue only while it is below the limit (checked and joined atomically).
        let limit = self.queue_limit;
        if self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < limit).then_some(waiting + 1)
            })
            .is_err()
        {
            return Err(AuthError::Overloaded {
                retry_after: SHED_RETRY_AFTER,
            });
        }
        // Joined above by the compare-and-add; left however the wait ends.
        self.slot_after(QueuePlace(&self.waiting)).await
    }

    async fn verify_with_permit(
        &self,
        password: String,
        stored_hash: Option<String>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<bool, AuthError> {
        let user_exists = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matched = self
            .threads
            .run(permit, move |memory| {
                if imported::is_bcrypt(&hash) {
                    imported::matches_bcrypt(password.as_bytes(), &hash)
                } else {
                    matches_phc(password.as_bytes(), &hash, memory)
                }
            })
            .await?;
        Ok(matched && user_exists)
    }

    /// Whether `stored_hash` was made with weaker (or other) parameters than the configured
    /// ones, so that it should be replaced after the next successful login.
    pub fn needs_rehash(&self, stored_hash: &str) -> bool {
        let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(stored_hash) else {
            return true;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return true;
        }
        match Params::try_from(&parsed) {
            Ok(stored) => {
                stored.m_cost() < self.params.m_cost()
                    || stored.t_cost() < self.params.t_cost()
                    || stored.p_cost() != self.params.p_cost()
            }
            Err(_) => true,
        }
    }

    /// Whether a login would be shed right now (every slot busy and the queue at its limit).
    pub fn is_saturated(&self) -> bool {
        self.queue_limit > 0
            && self.permits.available_permits() == 0
            && self.waiting.load(Ordering::Acquire) >= self.queue_limit
    }

    /// How many hashes are waiting for a hashing slot right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits (counted in the queue, however the wait ends) for a hashing slot.
    async fn wait_for_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        self.slot_after(QueuePlace::join(&self.waiting)).await
    }

    /// Waits for a hashing slot, holding `place` in the queue until then.
    async fn slot_after(
        &self,
        place: QueuePlace<'_>,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        let permit = self.permits.clone().acquire_owned().await;
        drop(place);
        permit.map_err(|_| AuthError::Unavailable("password hashing is shut down".into()))
    }
}

#[async_trait]
impl PasswordHashing for PasswordHasher {
    async fn hash(&self, password: String) -> Result<String, AuthError> {
        PasswordHasher::hash(self, password).await
    }

    async fn hash_or_shed(&self, password: String) -> Result<String, AuthError> {
        PasswordHasher::hash_or_shed(self, password).await
    }

    async fn verify_or_shed(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, AuthError> {
        PasswordHasher::verify_or_shed(self, password, stored).await
    }

    fn needs_rehash(&self, stored: &str) -> bool {
        PasswordHasher::needs_rehash(self, stored)
    }

    fn importable(&self, stored: &str) -> Result<(), &'static str> {
        imported::importable(stored)
    }

    fn ensure_capacity(&self) -> Result<(), AuthError> {
        if self.is_saturated() {
            return Err(AuthError::Overloaded {
                retry_after: SHED_RETRY_AFTER,
            });
        }
        Ok(())
    }

    fn queue_depth(&self) -> usize {
        PasswordHasher::queue_depth(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> HashingParams {
        HashingParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            concurrency: 2,
            queue_limit: 0,
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() -> Result<(), AuthError> {
        let hasher = PasswordHasher::new(fast()).await?;
        let hash = hasher.hash("correct horse".into()).await?;
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(
            hasher
                .verify_or_shed("correct horse".into(), Some(hash.clone()))
                .await?
        );
        assert!(
            !hasher
                .verify_or_shed("correct hors".into(), Some(hash))
                .await?
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_even_with_the_dummy_password() -> Result<(), AuthError>
    {
        let hasher = PasswordHasher::new(fast()).await?;
        assert!(!hasher.verify_or_shed(String::new(), None).await?);
        Ok(())
    }
}
