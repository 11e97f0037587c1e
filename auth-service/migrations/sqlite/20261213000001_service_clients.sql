-- Service accounts (AdminService.CreateServiceClient): a service is a principal too. Each client
-- has a row in `users` with the same id (its name), no password (an empty hash: no login can
-- ever match it, and its email_key "service:<name>" is no address) and `suspended_at` as its
-- "disabled" mark, so that ending its tokens is ending sessions: every client secret (a
-- "credential generation") is a row in `sessions` of kind 'service', named by the `sid` of the
-- tokens it obtained, and disabling the client or retiring a secret revokes those rows through
-- the Revoker, the change log and the revocation feed, exactly as for users.
CREATE TABLE service_clients (
    id TEXT PRIMARY KEY REFERENCES users (id),
    -- Space-separated audiences the client's own service tokens may be issued for.
    audiences TEXT NOT NULL,
    -- Space-separated audiences it may exchange users' credentials into (ExchangeToken).
    exchange_audiences TEXT NOT NULL DEFAULT '',
    -- The bound mutual-TLS identity: a certificate subject (RFC 4514 text) or a URI SAN
    -- (e.g. a SPIFFE ID). NULL when the client authenticates with its secret only.
    mtls_identity TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    -- SHA-256 of the current 256-bit secret, and the session that is its generation.
    secret_hash BLOB NOT NULL,
    generation TEXT NOT NULL,
    -- The secret a rotation replaced, accepted until previous_valid_until (the overlap).
    previous_secret_hash BLOB,
    previous_generation TEXT,
    previous_valid_until BIGINT,
    -- Bumped by every rotation: a compare-and-set guard against two racing rotations.
    rotations BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX service_clients_by_lapse ON service_clients (previous_valid_until);
