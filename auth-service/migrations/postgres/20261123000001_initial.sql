-- The logical schema, identical for SQLite and PostgreSQL but for the binary type.
-- Instants are unix milliseconds (BIGINT); tokens are stored only as SHA-256 hashes.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    -- Lower-cased email: the case-insensitive uniqueness key.
    email_key TEXT NOT NULL UNIQUE,
    -- argon2id PHC string.
    password_hash TEXT NOT NULL,
    -- Space-separated role names.
    roles TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- 'tokens' (access + refresh tokens) or 'session' (one opaque session token).
    kind TEXT NOT NULL,
    session_token_hash BYTEA UNIQUE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    idle_timeout_ms BIGINT NOT NULL,
    -- Absolute end of the session: caps every refresh.
    expires_at BIGINT NOT NULL,
    -- The one live refresh token, and the one it replaced (accepted again within the grace window).
    refresh_current_hash BYTEA,
    refresh_previous_hash BYTEA,
    refresh_rotated_at BIGINT,
    refresh_expires_at BIGINT,
    revoked_at BIGINT,
    revoke_reason TEXT,
    user_agent TEXT NOT NULL,
    peer_address TEXT NOT NULL
);

CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- Every refresh token ever issued, so a replayed old one is recognised and revokes its session.
CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);

CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    -- PKCS#8 Ed25519 key pair.
    private_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    retires_at BIGINT,
    drop_after BIGINT
);
