-- The revocation feed replays recent revocations: find them by time.
CREATE INDEX sessions_by_revoked_at ON sessions (revoked_at);

-- Set when every session of the user ended at once (revoke all, without keeping one): verifiers
-- that only see tokens reject the user's tokens issued before it.
ALTER TABLE users ADD COLUMN sessions_revoked_before BIGINT;
CREATE INDEX users_by_sessions_revoked_before ON users (sessions_revoked_before);
