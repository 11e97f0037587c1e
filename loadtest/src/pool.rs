//! The credentials the workload holds, and what the client knows about each: live, being
//! revoked, revoked (and when the revocation was acknowledged), or of unknown fate (a call that
//! changed it failed, so nothing may be asserted about it any more).

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use crate::rng::Rng;

#[derive(Clone, Debug)]
pub enum Credential {
    Tokens { access: String, refresh: String },
    Session { token: String },
}

impl Credential {
    /// What Verify and Logout take.
    pub fn bearer(&self) -> &str {
        match self {
            Credential::Tokens { access, .. } => access,
            Credential::Session { token } => token,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Live,
    Revoking,
    /// The revocation was acknowledged at this instant.
    Revoked(Instant),
    Unknown,
}

pub struct Entry {
    pub user: usize,
    credential: Mutex<Credential>,
    fate: Mutex<Fate>,
    /// Held by the one task refreshing or revoking this entry.
    busy: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Entry {
    pub fn new(user: usize, credential: Credential) -> Arc<Self> {
        Arc::new(Self {
            user,
            credential: Mutex::new(credential),
            fate: Mutex::new(Fate::Live),
            busy: AtomicBool::new(false),
        })
    }

    pub fn credential(&self) -> Credential {
        lock(&self.credential).clone()
    }

    pub fn replace_credential(&self, credential: Credential) {
        *lock(&self.credential) = credential;
    }

    pub fn fate(&self) -> Fate {
        *lock(&self.fate)
    }

    pub fn set_fate(&self, fate: Fate) {
        *lock(&self.fate) = fate;
    }

    /// Exclusive use for a refresh or a revocation; `false` if another task has it.
    pub fn try_claim(&self) -> bool {
        self.busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn release(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// Whether the revocation was acknowledged before `instant`.
    pub fn revoked_before(&self, instant: Instant) -> Option<Instant> {
        match self.fate() {
            Fate::Revoked(at) if at < instant => Some(at),
            _ => None,
        }
    }
}

/// Live entries (used by the workload) and revoked ones (watched by the auditor).
#[derive(Default)]
pub struct Pool {
    live: Mutex<Vec<Arc<Entry>>>,
    revoked: Mutex<Vec<Arc<Entry>>>,
}

/// The auditor keeps re-checking this many of the most recent revocations.
const REVOKED_KEPT: usize = 4096;

impl Pool {
    pub fn add(&self, entry: Arc<Entry>) {
        lock(&self.live).push(entry);
    }

    pub fn live_count(&self) -> usize {
        lock(&self.live).len()
    }

    pub fn pick_live(&self, rng: &mut Rng) -> Option<Arc<Entry>> {
        let live = lock(&self.live);
        if live.is_empty() {
            return None;
        }
        live.get(rng.below(live.len())).cloned()
    }

    /// A live entry no other task is refreshing or revoking, claimed for the caller.
    pub fn claim_live(&self, rng: &mut Rng) -> Option<Arc<Entry>> {
        for _ in 0..4 {
            let entry = self.pick_live(rng)?;
            if entry.try_claim() {
                return Some(entry);
            }
        }
        None
    }

    /// Takes `entry` out of the live set (revoked, or of unknown fate).
    pub fn retire(&self, entry: &Arc<Entry>) {
        let mut live = lock(&self.live);
        if let Some(index) = live.iter().position(|other| Arc::ptr_eq(other, entry)) {
            live.swap_remove(index);
        }
    }

    pub fn add_revoked(&self, entry: Arc<Entry>) {
        let mut revoked = lock(&self.revoked);
        if revoked.len() >= REVOKED_KEPT {
            revoked.remove(0);
        }
        revoked.push(entry);
    }

    pub fn pick_revoked(&self, rng: &mut Rng) -> Option<Arc<Entry>> {
        let revoked = lock(&self.revoked);
        if revoked.is_empty() {
            return None;
        }
        revoked.get(rng.below(revoked.len())).cloned()
    }

    pub fn all_live(&self) -> Vec<Arc<Entry>> {
        lock(&self.live).clone()
    }

    pub fn all_revoked(&self) -> Vec<Arc<Entry>> {
        lock(&self.revoked).clone()
    }
}
