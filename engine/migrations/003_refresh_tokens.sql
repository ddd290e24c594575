-- Refresh tokens rotate: each one can be traded once, for a new one of the same
-- family (one sign-in). Presenting one already traded is a replay (a stolen
-- token, or the client's own old copy): the whole family is revoked.
CREATE TABLE refresh_tokens (
  jti text PRIMARY KEY,
  family_id text NOT NULL,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
-- The per-user sweep of expired tokens at sign-in.
CREATE INDEX refresh_tokens_user_id_expires_at ON refresh_tokens (user_id, expires_at);
