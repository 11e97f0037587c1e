-- Account administration (AdminService.ListUsers, DeleteUser, ImportUsers).
--
-- A deleted account stays as an anonymous tombstone: its id is never given again (sessions and
-- the change log still name it), while its email, email key, password hash and roles are
-- erased (the email key becomes 'deleted <id>': with a space, which no address has, so the
-- address may register again). NULL for a live account; the instant of the deletion otherwise.
ALTER TABLE users ADD COLUMN deleted_at BIGINT;

-- ListUsers pages through accounts in creation order (keyset on created_at, id).
CREATE INDEX users_by_creation ON users (created_at, id);
