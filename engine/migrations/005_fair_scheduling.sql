-- Fair scheduling (engine/fairness.ts, api/quotas.ts): the BullMQ priority each
-- video's job was given (NULL for videos submitted before this migration), and
-- the index a submit reads its caller's unsettled videos through: one entry per
-- queued or rendering video, so the count costs the same however many videos
-- the user has finished. It carries status and priority so the read is an
-- index-only scan, which the planner also prefers for a user who owns a large
-- share of all rows (for whom a plain index on user_id lost to scanning every
-- unsettled video through videos_unsettled: 3 ms instead of 0.1 ms with 50,000
-- unsettled videos).
ALTER TABLE videos ADD COLUMN priority integer;
CREATE INDEX videos_user_unsettled ON videos (user_id) INCLUDE (status, priority) WHERE status IN ('queued', 'rendering');
