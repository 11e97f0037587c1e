//! The ports: what the rules need from the world outside them, as traits and records. `store/`
//! implements them for SQLite, PostgreSQL and Redis; nothing here knows how.

mod fanout;
mod store;

pub use fanout::{Fanout, FanoutEvent, FanoutListener};
pub use store::{
    NewSession, RefreshRotation, RevokeReason, RevokedSession, SessionRecord, SigningKeyRecord,
    Store, StoreError, UserRecord,
};
