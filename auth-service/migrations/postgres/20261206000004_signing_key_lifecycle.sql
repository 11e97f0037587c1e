-- Signing keys, issue 12 item 5:
-- * `seq` orders keys by when their rotation was asked for: the last rotation asked for wins.
-- * `revoked_at` is set when an administrator distrusts a compromised key (RevokeSigningKey).
-- * `private_key` becomes nullable: the private half is erased (NULL) once every token the key
--   signed has expired, at once when the key is revoked, and when a later rotation supersedes a
--   key that never signed. A row without it never signs and is never published.
ALTER TABLE signing_keys ALTER COLUMN private_key DROP NOT NULL;
ALTER TABLE signing_keys ADD COLUMN seq BIGINT;
UPDATE signing_keys s SET seq =
    (SELECT COUNT(*) FROM signing_keys k
     WHERE k.activates_at < s.activates_at OR (k.activates_at = s.activates_at AND k.kid <= s.kid));
ALTER TABLE signing_keys ALTER COLUMN seq SET NOT NULL;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_seq_key UNIQUE (seq);
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;
