-- Render cache (engine/render-cache.ts, api/render-cache-settle.ts).

-- A video settled from an earlier render (a cache hit): its keys are that
-- render's files, shared, not copies. Shown as output.cached.
ALTER TABLE videos ADD COLUMN cached boolean NOT NULL DEFAULT false;

-- Several rows may now point at one storage object, so nothing deletes an
-- object while any row still references it (api/media-sync.ts purgeMedia).
-- These make that check an index lookup per key.
CREATE INDEX videos_video_key ON videos (video_key) WHERE video_key IS NOT NULL;
CREATE INDEX videos_poster_key ON videos (poster_key) WHERE poster_key IS NOT NULL;
