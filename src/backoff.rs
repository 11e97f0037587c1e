//! The revocation feed's reconnect backoff: exponential, with jitter. The delay doubles from
//! 50 ms to 5 s after each failed attempt, and each wait is drawn between half the delay and all
//! of it, so verifiers cut off together (an auth-service replica restarting) spread their
//! reconnects instead of arriving in lockstep. The same rule as the Python and Node verifiers
//! (clients/).

use std::time::Duration;

const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Where a connection is in its backoff; `Backoff::default()` again once it has worked.
#[derive(Debug)]
pub(crate) struct Backoff {
    delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { delay: FIRST_DELAY }
    }
}

impl Backoff {
    /// How long to wait before the next attempt; the delay after it doubles.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = jittered(self.delay, random_unit());
        self.delay = (self.delay * 2).min(MAX_DELAY);
        wait
    }
}

/// Between half of `delay` and all of it, `unit` (in `[0, 1]`) picking where.
fn jittered(delay: Duration, unit: f64) -> Duration {
    delay.mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0)
}

/// A uniformly distributed number in `[0, 1)` from the system's random source; `1.0` (no
/// jitter, the full delay) in the unlikely case it fails.
fn random_unit() -> f64 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 4];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / 4_294_967_296.0,
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_between_half_the_delay_and_all_of_it() {
        let delay = Duration::from_millis(800);
        assert_eq!(jittered(delay, 0.0), Duration::from_millis(400));
        assert_eq!(jittered(delay, 1.0), delay);
        // Out-of-range input cannot leave the bounds.
        assert_eq!(jittered(delay, -3.0), Duration::from_millis(400));
        assert_eq!(jittered(delay, 7.0), delay);
    }

    #[test]
    fn the_delay_doubles_from_50_ms_to_5_s_and_every_wait_stays_within_it() {
        let mut backoff = Backoff::default();
        let mut delay = FIRST_DELAY;
        for _ in 0..12 {
            let wait = backoff.next_wait();
            assert!(
                (delay / 2..=delay).contains(&wait),
                "{wait:?} outside [{:?}, {delay:?}]",
                delay / 2
            );
            delay = (delay * 2).min(MAX_DELAY);
        }
        // 50 ms doubled 12 times is far past 5 s: capped.
        assert_eq!(delay, MAX_DELAY);
        assert!(backoff.next_wait() <= MAX_DELAY);
    }

    #[test]
    fn waits_are_spread_over_the_whole_range() {
        let delay = Duration::from_millis(1000);
        let waits: Vec<Duration> = (0..2000).map(|_| jittered(delay, random_unit())).collect();
        assert!(waits.iter().all(|wait| (delay / 2..=delay).contains(wait)));
        // Spread, not one value: with 2000 uniform draws each quarter of the range is hit (one
        // missed by chance: 4 * 0.75^2000, never).
        for quarter in 0..4u32 {
            let low = delay / 2 + delay / 8 * quarter;
            let high = low + delay / 8;
            assert!(
                waits.iter().any(|wait| (low..high).contains(wait)),
                "no wait in [{low:?}, {high:?})"
            );
        }
    }
}
