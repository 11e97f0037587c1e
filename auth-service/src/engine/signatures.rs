//! Ed25519 checks of access tokens seen for the first time.
//!
//! A lone check runs at once, on the caller's task, with aws-lc (the same code jsonwebtoken
//! verifies with). Checks that arrive while one is running wait, and the next round verifies all
//! of them together: one multiscalar multiplication for the whole batch (ed25519-dalek
//! `verify_batch`) costs about half as much per signature as one verify each from eight
//! signatures up. Nothing waits for a batch to fill: a batch is whatever queued during the
//! previous round, so an idle service pays nothing and a busy one batches by itself.
//!
//! A batch that fails is checked again one signature at a time, so each of its tokens gets the
//! single check's verdict. A batch that passes means every signature in it satisfies the Ed25519
//! equation for its key, except with negligible probability. The 128-bit coefficients are not
//! random: ed25519-dalek derives them from a hash of every message, key and signature in the
//! batch, so whoever writes the tokens cannot pick coefficients that cancel a bad signature.
//! The two checks are not identical: a signature whose `R` carries a small-order component
//! passes the batch for about one coefficient in eight and never the single check. Making one
//! that satisfies the rest of the equation takes the private key, and the keys are ours, so no
//! token anyone else can write reaches that difference.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use tokio::sync::oneshot;

/// Larger batches save little more per signature (about 27 µs at 16, 26 µs at 32 here) and
/// hold a runtime thread longer per round.
const MAX_BATCH: usize = 32;

/// An Ed25519 public key in the forms both checks use, decoded once per key.
pub struct PublicKey {
    single: UnparsedPublicKey<[u8; 32]>,
    batch: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// The 32-byte public key; `None` if it is not a valid curve point.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        let batch = ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
        Some(Self {
            single: UnparsedPublicKey::new(&ED25519, bytes),
            batch,
        })
    }

    fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.single.verify(message, signature).is_ok()
    }
}

/// A check waiting for the next round.
struct Waiting {
    message: Box<[u8]>,
    signature: [u8; 64],
    key: Arc<PublicKey>,
    verdict: oneshot::Sender<bool>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// Rounds running: a caller checking its own signature, or a spawned batch task.
    running: usize,
}

/// How many signatures were checked, and in how many rounds (a lone check is a round of one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckCounts {
    pub signatures: u64,
    pub rounds: u64,
}

pub struct SignatureChecks {
    queue: Mutex<Queue>,
    /// Batch tasks allowed at once, when the queue outgrows one batch (one per runtime thread).
    max_running: usize,
    signatures: AtomicU64,
    rounds: AtomicU64,
}

impl SignatureChecks {
    pub fn new(max_running: usize) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            max_running: max_running.max(1),
            signatures: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
        })
    }

    /// Whether `signature` over `message` is valid for `key`.
    pub async fn verify(
        self: &Arc<Self>,
        message: &[u8],
        signature: &[u8; 64],
        key: &Arc<PublicKey>,
    ) -> bool {
        let (verdict, receive_verdict) = oneshot::channel();
        {
            let mut queue = self.lock();
            if queue.running == 0 {
                queue.running = 1;
                drop(queue);
                // Nothing runs: check at once, on this task, and hand over whatever queued
                // meanwhile before returning. No await in between, so a cancelled call cannot
                // leave the queue without a round to drain it.
                let valid = key.verifies(message, signature);
                self.count(1);
                self.hand_over();
                return valid;
            }
            queue.waiting.push(Waiting {
                message: message.into(),
                signature: *signature,
                key: Arc::clone(key),
                verdict,
            });
            if queue.waiting.len() > MAX_BATCH && queue.running < self.max_running {
                queue.running += 1;
                tokio::spawn(Arc::clone(self).run_rounds());
            }
        }
        // The sender is only dropped unanswered if the runtime is shutting down.
        receive_verdict.await.unwrap_or(false)
    }

    pub fn counts(&self) -> CheckCounts {
        CheckCounts {
            signatures: self.signatures.load(Ordering::Relaxed),
            rounds: self.rounds.load(Ordering::Relaxed),
        }
    }

    /// Called by a caller that checked its own signature: a batch task takes over its place if
    /// checks queued meanwhile.
    fn hand_over(self: &Arc<Self>) {
        let mut queue = self.lock();
        if queue.waiting.is_empty() {
            queue.running -= 1;
        } else {
            tokio::spawn(Arc::clone(self).run_rounds());
        }
    }

    /// Checks batches until the queue is empty, letting the runtime's other tasks run between
    /// rounds.
    async fn run_rounds(self: Arc<Self>) {
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.running -= 1;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            self.count(batch.len());
            let verdicts = verdicts(&batch);
            for (waiting, valid) in batch.into_iter().zip(verdicts) {
                let _ = waiting.verdict.send(valid);
            }
            tokio::task::yield_now().await;
        }
    }

    fn count(&self, signatures: usize) {
        self.signatures
            .fetch_add(signatures as u64, Ordering::Relaxed);
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue holds no invariant a panicking holder could break halfway.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One verdict per waiting check, in order.
fn verdicts(batch: &[Waiting]) -> Vec<bool> {
    if batch.len() > 1 {
        let messages: Vec<&[u8]> = batch.iter().map(|waiting| &*waiting.message).collect();
        let signatures: Vec<ed25519_dalek::Signature> = batch
            .iter()
            .map(|waiting| ed25519_dalek::Signature::from_bytes(&waiting.signature))
            .collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> =
            batch.iter().map(|waiting| waiting.key.batch).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            return vec![true; batch.len()];
        }
    }
    batch
        .iter()
        .map(|waiting| waiting.key.verifies(&waiting.message, &waiting.signature))
        .collect()
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{Ed25519KeyPair, KeyPair},
    };

    use super::*;

    fn key_pair() -> (Ed25519KeyPair, Arc<PublicKey>) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let public = PublicKey::from_bytes(pair.public_key().as_ref()).expect("point");
        (pair, Arc::new(public))
    }

    fn signature(pair: &Ed25519KeyPair, message: &[u8]) -> [u8; 64] {
        pair.sign(message).as_ref().try_into().expect("64 bytes")
    }

    /// Concurrent checks, released together by a barrier; on two runtime threads so that
    /// rounds overlap.
    async fn check_all(
        cases: Vec<(Vec<u8>, [u8; 64], Arc<PublicKey>)>,
    ) -> (Vec<bool>, CheckCounts) {
        let checks = SignatureChecks::new(2);
        let start = Arc::new(tokio::sync::Barrier::new(cases.len()));
        let tasks: Vec<_> = cases
            .into_iter()
            .map(|(message, signature, key)| {
                let (checks, start) = (Arc::clone(&checks), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    checks.verify(&message, &signature, &key).await
                })
            })
            .collect();
        let mut verdicts = Vec::new();
        for task in tasks {
            verdicts.push(task.await.expect("task"));
        }
        (verdicts, checks.counts())
    }

    /// Every check queued before any round runs, so all are checked in full batches: the
    /// batch path itself, without depending on timing.
    async fn check_all_in_batches(
        cases: Vec<(Vec<u8>, [u8; 64], Arc<PublicKey>)>,
    ) -> (Vec<bool>, CheckCounts) {
        let checks = SignatureChecks::new(2);
        let total = cases.len();
        // Both rounds taken, as if two checks were running: callers can only queue.
        checks.lock().running = 2;
        let tasks: Vec<_> = cases
            .into_iter()
            .map(|(message, signature, key)| {
                let checks = Arc::clone(&checks);
                tokio::spawn(async move { checks.verify(&message, &signature, &key).await })
            })
            .collect();
        while checks.lock().waiting.len() < total {
            tokio::task::yield_now().await;
        }
        // One of the two "running" rounds ends and hands its place to a batch task.
        checks.hand_over();
        let mut verdicts = Vec::new();
        for task in tasks {
            verdicts.push(task.await.expect("task"));
        }
        (verdicts, checks.counts())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_valid_signatures_pass_and_most_are_checked_in_batches() {
        let (pair, key) = key_pair();
        let cases = (0..400)
            .map(|index| {
                let message = format!("header.payload-{index}").into_bytes();
                let signature = signature(&pair, &message);
                (message, signature, Arc::clone(&key))
            })
            .collect();
        let (verdicts, counts) = check_all(cases).await;
        assert!(verdicts.iter().all(|valid| *valid));
        assert_eq!(counts.signatures, 400);
        assert!(counts.rounds < 400, "no batch formed: {counts:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forged_signature_in_a_batch_fails_alone() {
        let (pair, key) = key_pair();
        let (other_pair, other_key) = key_pair();
        let cases: Vec<_> = (0..300)
            .map(|index| {
                let message = format!("header.payload-{index}").into_bytes();
                match index % 50 {
                    // Tampered message.
                    7 => (
                        b"header.tampered".to_vec(),
                        signature(&pair, &message),
                        Arc::clone(&key),
                    ),
                    // Signed by another key than the one it is checked with.
                    19 => {
                        let signature = signature(&other_pair, &message);
                        (message, signature, Arc::clone(&key))
                    }
                    // Flipped bit in s.
                    31 => {
                        let mut signature = signature(&pair, &message);
                        signature[40] ^= 1;
                        (message, signature, Arc::clone(&key))
                    }
                    // Valid, under the second key: keys may differ within a batch.
                    43 => {
                        let signature = signature(&other_pair, &message);
                        (message, signature, Arc::clone(&other_key))
                    }
                    _ => {
                        let signature = signature(&pair, &message);
                        (message, signature, Arc::clone(&key))
                    }
                }
            })
            .collect();
        let (verdicts, counts) = check_all_in_batches(cases).await;
        assert_eq!(counts.signatures, 300);
        assert_eq!(
            counts.rounds,
            300_u64.div_ceil(MAX_BATCH as u64),
            "{counts:?}"
        );
        for (index, valid) in verdicts.iter().enumerate() {
            let forged = matches!(index % 50, 7 | 19 | 31);
            assert_eq!(*valid, !forged, "signature {index}");
        }
    }

    #[tokio::test]
    async fn a_lone_check_runs_at_once_and_leaves_nothing_running() {
        let (pair, key) = key_pair();
        let checks = SignatureChecks::new(1);
        for round in 0..3 {
            let message = format!("m{round}").into_bytes();
            assert!(
                checks
                    .verify(&message, &signature(&pair, &message), &key)
                    .await
            );
            assert!(
                !checks
                    .verify(b"other", &signature(&pair, &message), &key)
                    .await
            );
        }
        assert_eq!(
            checks.counts(),
            CheckCounts {
                signatures: 6,
                rounds: 6
            }
        );
        assert_eq!(checks.lock().running, 0);
    }

    #[test]
    fn a_public_key_must_be_32_bytes_of_a_curve_point() {
        assert!(PublicKey::from_bytes(&[0u8; 31]).is_none());
        let (pair, _) = key_pair();
        assert!(PublicKey::from_bytes(pair.public_key().as_ref()).is_some());
    }
}
