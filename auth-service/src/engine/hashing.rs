//! Password hashing with argon2id, off the async runtime and with bounded concurrency.
//!
//! Every hash runs on a few dedicated threads behind a semaphore: a login storm then queues for
//! hashing permits instead of stalling the threads that serve `Verify`, and memory stays bounded
//! at `memory_kib x permits`. A login for an unknown email verifies against a dummy hash made
//! with the same parameters, so it costs the same time as a wrong password (no enumeration).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;
use tracing::Span;

use async_trait::async_trait;

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
        let params = self.params.clone();
        let salt = opaque_token::random_bytes::<SALT_BYTES>()?;
        let permit = self.wait_for_slot().await?;
        self.threads
            .run(permit, move |memory| {
                hash_into_phc(&params, password.as_bytes(), &salt, memory)
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
        let permit = self.wait_for_slot().await?;
        self.verify_with_permit(password, stored_hash, permit).await
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
            // Joined above by the compare-and-add; left however the wait ends.
            let permit = self.slot_after(QueuePlace(&self.waiting)).await?;
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
        let user_exists = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matched = self
            .threads
            .run(permit, move |memory| {
                matches_phc(password.as_bytes(), &hash, memory)
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

    async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, AuthError> {
        PasswordHasher::verify(self, password, stored).await
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

/// Work for a hashing thread, given that thread's argon2 memory to (re)use.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A fixed set of threads that do nothing but hash, each reusing one argon2 memory buffer.
/// argon2's own API allocates (and zeroes) its whole memory cost for every hash; freed 19 MiB
/// blocks stay cached and fragment glibc's heap, so a login-heavy process grew to hundreds of
/// megabytes. Here memory stays at `memory_kib x threads`, allocated on each thread's first hash.
#[derive(Clone)]
struct HashingThreads {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl HashingThreads {
    fn start(count: usize) -> Result<Self, AuthError> {
        // Jobs are only sent with a permit of a semaphore of `count` permits: never more waiting.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(count);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for index in 0..count {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    yield_to_other_work();
                    let mut memory = Vec::new();
                    loop {
                        // Ends when the last hasher (and so the last sender) is dropped.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|error| {
                    AuthError::Internal(format!("cannot start a hashing thread: {error}"))
                })?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on a hashing thread. The permit travels with the job, so a caller that gives
    /// up (its deadline passed) frees the slot only when the hash it started is done.
    async fn run<T: Send + 'static>(
        &self,
        permit: tokio::sync::OwnedSemaphorePermit,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let span = Span::current();
        let job: Job = Box::new(move |memory| {
            let _permit = permit;
            let _ = done.send(span.in_scope(|| work(memory)));
        });
        self.jobs
            .try_send(job)
            .map_err(|_| AuthError::Internal("the hashing threads are gone".into()))?;
        result
            .await
            .map_err(|_| AuthError::Internal("a hashing thread failed".into()))
    }
}

/// The nice value of the hashing threads. Against busy threads of normal priority they get about
/// a tenth of the CPU (CFS weights 110 and 1024), so a login storm cannot starve `Verify`; with
/// nothing else to run they still get whole cores, so login throughput is unchanged when idle.
const HASHING_NICE: i32 = 10;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn yield_to_other_work() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours. On Linux the nice
    // value is per thread, and PRIO_PROCESS with who = 0 means the calling thread alone.
    // Lowering one's own priority needs no privilege; on failure the thread just stays at 0.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HASHING_NICE) };
}

#[cfg(not(target_os = "linux"))]
fn yield_to_other_work() {}

/// RFC 9106 recommends 128-bit salts.
const SALT_BYTES: usize = 16;
/// argon2's default tag length (256 bits).
const OUTPUT_BYTES: usize = 32;

/// `memory` as exactly the blocks `params` needs (grown once, then reused).
fn blocks_for<'m>(params: &Params, memory: &'m mut Vec<Block>) -> &'m mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

fn hash_into_phc(
    params: &Params,
    password: &[u8],
    salt: &[u8],
    memory: &mut Vec<Block>,
) -> Result<String, AuthError> {
    let failed = |error: &dyn std::fmt::Display| {
        AuthError::Internal(format!("argon2 hashing failed: {error}"))
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut output = [0u8; OUTPUT_BYTES];
    argon2
        .hash_password_into_with_memory(password, salt, &mut output, blocks_for(params, memory))
        .map_err(|error| failed(&error))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|error| failed(&error))?,
        salt: Some(Salt::new(salt).map_err(|error| failed(&error))?),
        hash: Some(Output::new(&output).map_err(|error| failed(&error))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to the PHC string `stored` (with the parameters written in it),
/// compared in constant time. An unparsable string matches nothing.
fn matches_phc(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt, &mut output, blocks_for(&params, memory))
        .is_ok()
        && bool::from(output.as_slice().ct_eq(expected))
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
    fn hashes_agree_with_the_argon2_crates_own_phc_api_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let params = Params::new(1024, 1, 1, None).unwrap_or_default();
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut memory = Vec::new();
        // Stored by earlier versions of this service (the crate's API): still verifies.
        let stored = reference
            .hash_password(b"correct horse")
            .map(|hash| hash.to_string())
            .unwrap_or_default();
        assert!(matches_phc(b"correct horse", &stored, &mut memory));
        assert!(!matches_phc(b"correct hors", &stored, &mut memory));
        // Made here: the crate verifies it, so nothing is locked to this code.
        let ours = hash_into_phc(&params, b"correct horse", &[7; SALT_BYTES], &mut memory)
            .unwrap_or_default();
        assert!(ours.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{ours}");
        assert!(
            reference
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        assert!(!matches_phc(b"", "not a phc string", &mut memory));
    }
}
