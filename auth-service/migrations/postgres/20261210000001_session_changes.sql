-- Every change that makes a remembered session or token stale (a session revoked, all of a
-- user's sessions revoked, a user's roles changed), written in the same transaction as the
-- change itself. Replicas re-read it by `seq` (not by time) every AUTH_REVOCATION_POLL_INTERVAL,
-- so a change is found however long its transaction took to commit and whatever the writer's
-- clock said. A sequence value is taken at insert, not at commit: a reader also re-reads the
-- numbers it skipped (ARCHITECTURE.md, "Invariants").
CREATE TABLE session_changes (
    seq BIGSERIAL PRIMARY KEY,
    -- 'session' (session_id revoked), 'user' (every session up to `at` revoked), 'roles'.
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT,
    -- The instant the change carries (revoked_at, revoked_before), unix milliseconds.
    at BIGINT NOT NULL
);
