//! Password hashing with argon2id, off the async runtime and with bounded concurrency.
//!
//! Every hash runs on the blocking pool behind a semaphore: a login storm then queues for
//! hashing permits instead of stalling the threads that serve `Verify`, and memory stays bounded
//! at `memory_kib x permits`. A login for an unknown email verifies against a dummy hash made
//! with the same parameters, so it costs the same time as a wrong password (no enumeration).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _},
};
use tokio::sync::Semaphore;
use tracing::Span;

use super::AuthError;

/// NIST SP 800-63B: at least 8 characters; we accept up to 1024 bytes and never truncate.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;
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

/// One login's place in the hashing queue, given back when dropped.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
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
        let mut hasher = Self {
            params,
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_limit: settings.queue_limit,
            dummy_hash: Arc::from(""),
        };
        let unguessable = super::opaque_token::OpaqueToken::generate()?.text;
        hasher.dummy_hash = Arc::from(hasher.hash(unguessable).await?);
        Ok(hasher)
    }

    /// Checks a new password against the policy (length only: no composition rules, per NIST).
    pub fn check_policy(password: &str) -> Result<(), AuthError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::PasswordTooLong);
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AuthError::WeakPassword(
                "the password must be at least 8 characters long",
            ));
        }
        Ok(())
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let argon2 = self.argon2();
        self.run_blocking(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| AuthError::Internal(format!("argon2 hashing failed: {error}")))
        })
        .await?
    }

    /// Whether `password` matches `stored_hash`. With no stored hash (unknown user) the dummy
    /// hash is checked instead and the answer is always false, after the same amount of work.
    pub async fn verify(
        &self,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, AuthError> {
        let argon2 = self.argon2();
        let user_exists = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matched = self
            .run_blocking(move || {
                argon2
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(matched && user_exists)
    }

    /// `verify` for a login: when `queue_limit` logins already wait for a hashing slot, answers
    /// `Overloaded` at once instead of queueing (a login storm sheds load, it does not pile up).
    pub async fn verify_or_shed(
        &self,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, AuthError> {
        if self.queue_limit > 0 {
            match self.permits.clone().try_acquire_owned() {
                // A free slot: no queueing, nothing to shed.
                Ok(permit) => return self.verify_with_permit(password, stored_hash, permit).await,
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
            // Leaves the queue however the wait ends, also when the caller's deadline cancels it.
            let place = QueuePlace(&self.waiting);
            let permit = self.permits.clone().acquire_owned().await;
            drop(place);
            let permit = permit
                .map_err(|_| AuthError::Unavailable("password hashing is shut down".into()))?;
            return self.verify_with_permit(password, stored_hash, permit).await;
        }
        self.verify(password, stored_hash).await
    }

    async fn verify_with_permit(
        &self,
        password: String,
        stored_hash: Option<String>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<bool, AuthError> {
        let argon2 = self.argon2();
        let user_exists = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let span = Span::current();
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(|| {
                argon2
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
        })
        .await
        .map_err(|error| AuthError::Internal(format!("hashing task failed: {error}")))?;
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

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let _permit =
            permit.map_err(|_| AuthError::Unavailable("password hashing is shut down".into()))?;
        let span = Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .await
            .map_err(|error| AuthError::Internal(format!("hashing task failed: {error}")))
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
                .verify("correct horse".into(), Some(hash.clone()))
                .await?
        );
        assert!(!hasher.verify("correct hors".into(), Some(hash)).await?);
        Ok(())
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_even_with_the_dummy_password() -> Result<(), AuthError>
    {
        let hasher = PasswordHasher::new(fast()).await?;
        assert!(!hasher.verify(String::new(), None).await?);
        Ok(())
    }

    #[test]
    fn the_policy_counts_characters_for_the_minimum_and_bytes_for_the_maximum() {
        assert!(PasswordHasher::check_policy("sevench").is_err());
        // Eight characters, sixteen bytes: long enough.
        assert!(PasswordHasher::check_policy("éééééééé").is_ok());
        assert!(PasswordHasher::check_policy(&"a".repeat(1024)).is_ok());
        assert!(matches!(
            PasswordHasher::check_policy(&"a".repeat(1025)),
            Err(AuthError::PasswordTooLong)
        ));
    }
}
