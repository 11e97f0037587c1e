-- Set for a session started by Login with `management: true`: only its credentials may call the
-- session-management, password and admin RPCs, and they are refused by the apps (`Verify`,
-- ext_authz). Every earlier session is an app session.
ALTER TABLE sessions ADD COLUMN management BOOLEAN NOT NULL DEFAULT FALSE;
