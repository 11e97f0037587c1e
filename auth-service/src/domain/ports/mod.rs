//! The ports: what the rules need from the world outside them, as traits and records. `store/`
//! implements storage and fan-out for SQLite, PostgreSQL and Redis, `engine/` the machinery;
//! nothing here knows how.

mod accounts;
mod fanout;
mod listing;
mod machinery;
mod retention;
mod services;
mod store;

pub use accounts::{
    AccountCodes, CodePurpose, CodeRecipient, CodeRecord, NewCode, Notice, NoticeKind, Notifier,
};
pub use fanout::{Fanout, FanoutEvent, FanoutListener};
pub use listing::{ImportOutcome, Keyset, UserFilter};
pub use machinery::{
    CacheTicket, LiveSession, PasswordHashing, RevocationNews, RevokedSetCheck, SessionCache,
    SigningKeys,
};
pub use retention::{PruneCounts, PruneLease, Retention};
pub use services::{LapsedGeneration, ServiceClientRecord, ServiceRotation};
pub use store::{
    KeyRotation, KeyRotationOutcome, LoggedChange, NewSession, OwnerStanding,
    PrivateKeyReplacement, RefreshRotation, RevokeReason, RevokedSession, SessionRecord,
    SigningKeyRecord, Store, StoreError, TOMBSTONE_KEY_PREFIX, UserRecord,
};
