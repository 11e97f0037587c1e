-- Signing keys, issue 12 item 5:
-- * `seq` orders keys by when their rotation was asked for: the last rotation asked for wins.
-- * `revoked_at` is set when an administrator distrusts a compromised key (RevokeSigningKey).
-- * `private_key` becomes nullable: the private half is erased (NULL) once every token the key
--   signed has expired, at once when the key is revoked, and when a later rotation supersedes a
--   key that never signed. A row without it never signs and is never published.
-- SQLite cannot drop a NOT NULL constraint in place: the table is rebuilt.
CREATE TABLE signing_keys_v2 (
    kid TEXT PRIMARY KEY,
    -- PKCS#8 Ed25519 key pair; NULL once erased.
    private_key BLOB,
    created_at BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    retires_at BIGINT,
    drop_after BIGINT,
    seq BIGINT NOT NULL UNIQUE,
    revoked_at BIGINT
);
INSERT INTO signing_keys_v2 (kid, private_key, created_at, activates_at, retires_at, drop_after, seq)
SELECT s.kid, s.private_key, s.created_at, s.activates_at, s.retires_at, s.drop_after,
       (SELECT COUNT(*) FROM signing_keys k
        WHERE k.activates_at < s.activates_at OR (k.activates_at = s.activates_at AND k.kid <= s.kid))
FROM signing_keys s;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_v2 RENAME TO signing_keys;
