-- Schedulers' heartbeats (issue 15): when each instance's scheduler last
-- looked at the store for due work, so that the dashboard of any instance
-- can tell a quiet fleet from a dead daemon. One row per instance, replaced
-- every round; rows older than a week are deleted by the writes.
CREATE TABLE heartbeats (
	instance    TEXT    NOT NULL PRIMARY KEY,
	started_at  INTEGER NOT NULL,
	round_at    INTEGER NOT NULL,
	interval_ms INTEGER NOT NULL,
	error       TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX heartbeats_round ON heartbeats (round_at);
