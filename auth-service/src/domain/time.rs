//! Instants as unix milliseconds: the one time type of the domain and the store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, milliseconds since the unix epoch (UTC).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// The wall clock. Only the transport, `engine/` and background tasks call this; the rules
    /// are handed the time so tests control it (test `architecture::the_rules_never_read_the_clock`).
    #[allow(clippy::disallowed_methods)]
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds, as JWT `NumericDate` claims use (RFC 7519 section 2).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds.saturating_mul(1000))
    }

    pub fn plus(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(duration)))
    }

    pub fn minus(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(duration)))
    }

    /// How long after `earlier` this instant is; zero if it is not later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

pub fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        let far = Timestamp::from_millis(i64::MAX - 5);
        assert_eq!(far.plus(Duration::from_secs(60)).millis(), i64::MAX);
        assert_eq!(
            Timestamp::from_millis(10).since(Timestamp::from_millis(20)),
            Duration::ZERO
        );
        assert_eq!(Timestamp::from_millis(1_999).unix_seconds(), 1);
    }
}
