//! The threads that do nothing but hash: a fixed set, fed through one bounded job queue, each
//! reusing its argon2 memory and running at a lowered priority (`setpriority`), so that hashing
//! neither fragments the heap nor takes the CPU from the threads that serve `Verify`.

use std::sync::Arc;

use argon2::Block;
use tracing::Span;

use crate::domain::AuthError;

/// Work for a hashing thread, given that thread's argon2 memory to (re)use.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A fixed set of threads that do nothing but hash, each reusing one argon2 memory buffer.
/// argon2's own API allocates (and zeroes) its whole memory cost for every hash; freed 19 MiB
/// blocks stay cached and fragment glibc's heap, so a login-heavy process grew to hundreds of
/// megabytes. Here memory stays at `memory_kib x threads`, allocated on each thread's first hash.
#[derive(Clone)]
pub(super) struct HashingThreads {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl HashingThreads {
    pub(super) fn start(count: usize) -> Result<Self, AuthError> {
        // Jobs are only sent with a permit of a semaphore of `count` permits: never more waiting.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(count);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for index in 0..count {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    // A login storm cannot starve `Verify` (see `priority.rs`).
                    crate::priority::lower_this_thread();
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
    pub(super) async fn run<T: Send + 'static>(
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
