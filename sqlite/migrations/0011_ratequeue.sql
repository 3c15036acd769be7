-- Rate-limit queues (issue 13): the jobs waiting for a budget, one row per
-- job, in the queue of the bucket that blocks it. A job passes a bucket only
-- when its free slots outnumber the jobs waiting ahead of it (smaller
-- ticket), and it is deferred to its own turn, so a slot that frees
-- wakes one job rather than every job waiting. The ticket is kept while the
-- job waits, also when another bucket blocks it next.
CREATE TABLE rate_waits (
	job_id INTEGER PRIMARY KEY REFERENCES jobs (id),
	ticket INTEGER NOT NULL,
	ca     TEXT    NOT NULL,
	bucket TEXT    NOT NULL,
	name   TEXT    NOT NULL, -- the limit, for the operator
	since  INTEGER NOT NULL,
	turn   INTEGER NOT NULL
) STRICT;
CREATE INDEX rate_waits_queue ON rate_waits (ca, bucket, ticket);
CREATE INDEX rate_waits_ticket ON rate_waits (ca, ticket);

-- A disabled job (its certificate withdrawn, its key type removed) is never
-- claimed: it must not keep a place that the jobs behind it count.
CREATE TRIGGER jobs_disabled_leave_queue AFTER UPDATE OF disabled ON jobs
	WHEN NEW.disabled AND NOT OLD.disabled
BEGIN
	DELETE FROM rate_waits WHERE job_id = NEW.id;
END;
