-- The animated WebP preview (output.preview in the spec): a third file of a
-- render, beside the MP4 and the poster, moved with them on a visibility change.
ALTER TABLE videos ADD COLUMN preview_key text;

-- The deletion guard (api/media-refs.ts referencedKeys) looks a key up in each
-- key column; this makes the preview's an index lookup too.
CREATE INDEX videos_preview_key ON videos (preview_key) WHERE preview_key IS NOT NULL;

-- The maintenance pass's misplaced-media scan (api/video-store.ts misplacedMedia)
-- now checks every file of a row, not only the MP4: the same partial index as
-- in 002, with the poster and the preview added (a NULL preview never matches).
DROP INDEX videos_media_misplaced;
CREATE INDEX videos_media_misplaced ON videos (id)
  WHERE status = 'succeeded' AND ((visibility = 'private') <> (video_key LIKE 'private/%')
    OR (visibility = 'private') <> (poster_key LIKE 'private/%')
    OR (visibility = 'private') <> (preview_key LIKE 'private/%'));
