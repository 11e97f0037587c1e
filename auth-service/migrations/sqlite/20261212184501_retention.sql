-- Issue 13, bounded data (engine/pruner.rs):
-- * The live-sessions gauge counts only unrevoked sessions, from this index alone (it holds
--   every column the count reads), instead of scanning the whole table. `revoked_at` leads so
--   that the count's `revoked_at IS NULL` picks this index over `sessions_by_revoked_at`.
CREATE INDEX sessions_unrevoked ON sessions (revoked_at, expires_at, last_seen_at, idle_timeout_ms)
    WHERE revoked_at IS NULL;
-- * The pruner finds change-log rows past their retention by `at`.
CREATE INDEX session_changes_by_at ON session_changes (at);
