-- Every change that makes a remembered session or token stale (a session revoked, all of a
-- user's sessions revoked, a user's roles changed), written in the same transaction as the
-- change itself. Replicas re-read it by `seq` (not by time) every AUTH_REVOCATION_POLL_INTERVAL,
-- so a change is found however long its transaction took to commit and whatever the writer's
-- clock said. SQLite commits in `seq` order (one writer); the reader treats both databases
-- alike and re-reads any number it skipped for a while (ARCHITECTURE.md, "Invariants").
CREATE TABLE session_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'session' (session_id revoked), 'user' (every session up to `at` revoked), 'roles'.
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT,
    -- The instant the change carries (revoked_at, revoked_before), unix milliseconds.
    at BIGINT NOT NULL
);
