//! Group commit for refresh rotations: rotations that arrive while a commit is in flight are
//! written together in the next transaction, so many rotations share one fsync (SQLite,
//! `synchronous=FULL`) or one commit (PostgreSQL) instead of paying one each.
//!
//! Nothing waits for a batch to fill: a lone rotation is written at once, and a batch is
//! whatever queued during the previous commit (the pattern of `engine/signatures.rs`). Each
//! rotation keeps its own compare-and-set: the statements of a batch run one after another (in
//! one transaction on SQLite; PostgreSQL's batch is one statement, its own transaction), so a
//! second rotation of the same session sees the first one's result. A rotation is answered only
//! after what wrote it committed, so an acknowledged rotation is as durable as before. If a
//! batch fails as a whole (a constraint, a lost connection), each of its rotations is written
//! again on its own, so one bad rotation cannot fail its neighbours.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::domain::ports::{RefreshRotation, StoreError};

/// Rotations per transaction at most: enough to share a commit widely, few enough that a
/// batch holds the write lock (SQLite) or a connection (PostgreSQL) only briefly.
const MAX_BATCH: usize = 64;

/// Writes rotations together, one commit for the batch (implemented per backend by
/// `impl_sql_store!`).
#[async_trait]
pub trait RotationWriter: Send + Sync + 'static {
    /// What a rotation's compare-and-set came to (the session it won, or that it lost).
    type Verdict: Send + 'static;
    /// One verdict per rotation, in order.
    async fn write_together(
        &self,
        batch: &[RefreshRotation],
    ) -> Result<Vec<Self::Verdict>, StoreError>;
}

struct Waiting<V> {
    rotation: RefreshRotation,
    verdict: oneshot::Sender<Result<V, StoreError>>,
}

struct Queue<V> {
    waiting: Vec<Waiting<V>>,
    /// Committer tasks running.
    running: usize,
}

pub struct GroupCommit<W: RotationWriter> {
    writer: W,
    queue: Mutex<Queue<W::Verdict>>,
    /// Transactions in flight at once: 1 for SQLite (one writer anyway), a few for PostgreSQL.
    max_running: usize,
}

impl<W: RotationWriter> GroupCommit<W> {
    pub fn new(writer: W, max_running: usize) -> Arc<Self> {
        Arc::new(Self {
            writer,
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                running: 0,
            }),
            max_running: max_running.max(1),
        })
    }

    /// Writes `rotation` in the next transaction; answers once that has committed.
    pub async fn rotate(
        self: &Arc<Self>,
        rotation: RefreshRotation,
    ) -> Result<W::Verdict, StoreError> {
        let (verdict, answer) = oneshot::channel();
        {
            let mut queue = self.lock();
            queue.waiting.push(Waiting { rotation, verdict });
            if queue.running < self.max_running {
                queue.running += 1;
                // A task of its own: a caller that gives up does not abandon the others' commit.
                tokio::spawn(Arc::clone(self).commit_batches());
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Other(
                "the rotation's commit task ended without an answer".into(),
            ))
        })
    }

    async fn commit_batches(self: Arc<Self>) {
        loop {
            let batch: Vec<Waiting<W::Verdict>> = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.running -= 1;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            let (rotations, verdicts): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|waiting| (waiting.rotation, waiting.verdict))
                .unzip();
            match self.writer.write_together(&rotations).await {
                Ok(won) if won.len() == rotations.len() => {
                    for (verdict, won) in verdicts.into_iter().zip(won) {
                        let _ = verdict.send(Ok(won));
                    }
                }
                outcome => {
                    if let Err(error) = &outcome {
                        // Rare (a constraint, a lost connection, a deadlock between committers);
                        // each rotation is retried on its own, so only the cause is worth a line.
                        tracing::warn!(rotations = rotations.len(), %error, "a group commit failed as a whole; writing its rotations one at a time");
                    }
                    for (verdict, rotation) in verdicts.into_iter().zip(&rotations) {
                        let alone = self.writer.write_together(std::slice::from_ref(rotation));
                        let won = alone.await.and_then(|won| {
                            won.into_iter().next().ok_or_else(|| {
                                StoreError::Other("a rotation written without a verdict".into())
                            })
                        });
                        let _ = verdict.send(won);
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<W::Verdict>> {
        // The queue holds no invariant a panicking holder could break halfway.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::Timestamp;

    /// Records each transaction's size; refuses any batch holding a rotation of session "bad".
    #[derive(Default)]
    struct Recorder {
        transactions: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl RotationWriter for Arc<Recorder> {
        type Verdict = bool;

        async fn write_together(&self, batch: &[RefreshRotation]) -> Result<Vec<bool>, StoreError> {
            // A commit takes a while: rotations arriving meanwhile queue for the next one.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if batch.len() > 1 && batch.iter().any(|r| r.new_previous == b"bad") {
                return Err(StoreError::Other("constraint".into()));
            }
            self.transactions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(batch.len());
            Ok(batch.iter().map(|r| r.expected_current == b"ok").collect())
        }
    }

    fn rotation(session: &str, expected: &[u8]) -> RefreshRotation {
        let at = Timestamp::from_millis(1);
        RefreshRotation {
            expected_current: expected.to_vec(),
            new_current: vec![1],
            // The session, for the recorder to tell them apart.
            new_previous: session.as_bytes().to_vec(),
            rotated_at: at,
            refresh_expires_at: at,
            now: at,
        }
    }

    async fn rotate_all(
        commit: &Arc<GroupCommit<Arc<Recorder>>>,
        rotations: Vec<RefreshRotation>,
    ) -> Vec<Result<bool, StoreError>> {
        let tasks: Vec<_> = rotations
            .into_iter()
            .map(|r| {
                let commit = Arc::clone(commit);
                tokio::spawn(async move { commit.rotate(r).await })
            })
            .collect();
        let mut verdicts = Vec::new();
        for task in tasks {
            verdicts.push(task.await.unwrap_or(Err(StoreError::Conflict)));
        }
        verdicts
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotations_arriving_during_a_commit_share_the_next_one_and_keep_their_verdicts() {
        let recorder = Arc::new(Recorder::default());
        let commit = GroupCommit::new(Arc::clone(&recorder), 1);
        let rotations = (0..100)
            .map(|i| rotation(&format!("s{i}"), if i % 3 == 0 { b"stale" } else { b"ok" }))
            .collect();
        let verdicts = rotate_all(&commit, rotations).await;
        for (i, verdict) in verdicts.iter().enumerate() {
            assert_eq!(verdict.as_ref().ok(), Some(&(i % 3 != 0)), "rotation {i}");
        }
        let transactions = recorder
            .transactions
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        assert_eq!(transactions.iter().sum::<usize>(), 100);
        assert!(transactions.len() < 10, "{transactions:?}");
        assert!(transactions.iter().all(|&size| size <= MAX_BATCH));
    }

    #[tokio::test]
    async fn a_lone_rotation_is_written_at_once_in_its_own_transaction() {
        let recorder = Arc::new(Recorder::default());
        let commit = GroupCommit::new(Arc::clone(&recorder), 1);
        for _ in 0..3 {
            assert!(matches!(
                commit.rotate(rotation("s", b"ok")).await,
                Ok(true)
            ));
        }
        let transactions = recorder
            .transactions
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        assert_eq!(transactions, [1, 1, 1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_is_written_again_one_rotation_at_a_time() {
        let recorder = Arc::new(Recorder::default());
        let commit = GroupCommit::new(Arc::clone(&recorder), 1);
        let mut rotations: Vec<_> = (0..20).map(|i| rotation(&format!("s{i}"), b"ok")).collect();
        rotations.push(rotation("bad", b"ok"));
        let verdicts = rotate_all(&commit, rotations).await;
        // Alone, "bad" is written too (the writer refuses it only among others): every
        // rotation got its own verdict, none was failed by a neighbour.
        assert!(verdicts.iter().all(|verdict| matches!(verdict, Ok(true))));
    }
}
