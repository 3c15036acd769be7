-- Schedulers' heartbeats (issue 15), as in the SQLite store's
-- 0024_heartbeats.sql: one row per instance, replaced every round; rows
-- older than a week are deleted by the writes.
CREATE TABLE heartbeats (
	instance    text COLLATE "C" NOT NULL PRIMARY KEY,
	started_at  timestamptz      NOT NULL,
	round_at    timestamptz      NOT NULL,
	interval_ms bigint           NOT NULL,
	error       text             NOT NULL DEFAULT ''
);

CREATE INDEX heartbeats_round ON heartbeats (round_at);
