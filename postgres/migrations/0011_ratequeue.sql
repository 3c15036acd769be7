-- Rate-limit queues (issue 13), as in the SQLite store's 0011_ratequeue.sql:
-- the jobs waiting for a budget, one row per job, in the queue of the bucket
-- that blocks it, ordered by ticket. Rows are written and read under the
-- CA's advisory lock (the one reservations take), so instances sharing the
-- database never hand out the same ticket or the same freed slot twice.
CREATE TABLE rate_waits (
	job_id bigint PRIMARY KEY REFERENCES jobs (id),
	ticket bigint           NOT NULL,
	ca     text COLLATE "C" NOT NULL,
	bucket text COLLATE "C" NOT NULL,
	name   text             NOT NULL,
	since  timestamptz      NOT NULL,
	turn   timestamptz      NOT NULL
);
CREATE INDEX rate_waits_queue ON rate_waits (ca, bucket, ticket);
CREATE INDEX rate_waits_ticket ON rate_waits (ca, ticket);

-- A disabled job (its certificate withdrawn, its key type removed) is never
-- claimed: it must not keep a place that the jobs behind it count.
CREATE FUNCTION jobs_disabled_leave_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM rate_waits WHERE job_id = NEW.id;
	RETURN NULL;
END
$$;
CREATE TRIGGER jobs_disabled_leave_queue AFTER UPDATE OF disabled ON jobs
	FOR EACH ROW WHEN (NEW.disabled AND NOT OLD.disabled) EXECUTE FUNCTION jobs_disabled_leave_queue();
