-- Email verification and password reset (AuthService RequestEmailVerification / ConfirmEmail,
-- RequestPasswordReset / ResetPassword; domain/recovery.rs).
--
-- When the account's owner proved the address (a ConfirmEmail or ResetPassword with a code
-- sent to it), or an administrator said so (AdminService.SetEmailVerified). NULL: unverified.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;

-- One-time codes sent to an account's address. Only the SHA-256 of the 256-bit code is kept, so
-- a database leak yields no usable code. A new code of a purpose replaces the account's earlier
-- ones (at most one row per account and purpose); a consumed code stays, marked, until then.
-- A request for an address with no account writes a row too (user_id NULL, never usable), so
-- both answers cost the same commit; such rows go once expired, at the next request.
CREATE TABLE account_codes (
    code_hash BYTEA PRIMARY KEY,
    -- NULL: asked for an address with no account (see above).
    user_id TEXT REFERENCES users (id),
    -- 'verify_email' or 'reset_password'.
    purpose TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Set by the one call that used it: a code is single-use.
    consumed_at BIGINT
);

CREATE INDEX account_codes_by_user ON account_codes (user_id, purpose);
