-- Set while an administrator has suspended the account (AdminService.SuspendUser): Login and
-- Refresh refuse the user. NULL for an active account.
ALTER TABLE users ADD COLUMN suspended_at BIGINT;
