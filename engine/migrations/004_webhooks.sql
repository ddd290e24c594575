-- Webhooks (api/webhooks.ts): a video's callback URL, the outbox marker that
-- says its terminal state was handed to the webhook queue, each user's signing
-- secret, and every delivery attempt.

-- The https URL given at submit (NULL: no webhook). Not part of the spec.
ALTER TABLE videos ADD COLUMN callback_url text;
-- Set once the webhook job for the current terminal state is in the queue; a
-- terminal video with a callback_url and no mark is still owed one (the
-- maintenance pass enqueues it). Cleared when a failed video is retried.
ALTER TABLE videos ADD COLUMN webhook_queued_at timestamptz;
-- The outbox scan: only videos still owed a webhook are in it, so it stays tiny.
CREATE INDEX videos_webhook_outbox ON videos (finished_at)
  WHERE callback_url IS NOT NULL AND webhook_queued_at IS NULL AND status IN ('succeeded', 'failed', 'canceled');

-- A user's current signing secret (whsec_…). It is a shared HMAC key, so it is
-- stored as is (a hash could not sign); rotating replaces it.
CREATE TABLE webhook_secrets (
  user_id text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per attempt: what was sent where, and what came back.
CREATE TABLE webhook_deliveries (
  id text PRIMARY KEY,
  video_id text NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
  attempt integer NOT NULL,
  url text NOT NULL,
  event text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
  http_status integer,
  error text,
  duration_ms integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_video_id ON webhook_deliveries (video_id, created_at DESC);
