-- The listings' status filters in the store (issue 13), as in the SQLite
-- store's 0036_jobs_current_validity.sql: a certificate's status (ok,
-- renewing, pending, failing, expiring, expired) depends on its current
-- certificates' validity, which lived only in issuances, a join away and not
-- indexed per job.
--
-- current_not_before and current_not_after copy the validity of the job's
-- current issuance (current_id), NULL without one. Issuances never change,
-- so the copy only follows current_id: the trigger sets it on every insert
-- and on every write of current_id, whatever statement does it. Backfilled
-- here for the jobs issued before.
ALTER TABLE jobs ADD COLUMN current_not_before timestamptz;
ALTER TABLE jobs ADD COLUMN current_not_after timestamptz;

UPDATE jobs j SET current_not_before = i.not_before, current_not_after = i.not_after
FROM issuances i WHERE i.id = j.current_id;

CREATE FUNCTION jobs_current_validity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- No row (current_id NULL) sets both to NULL.
	SELECT i.not_before, i.not_after INTO NEW.current_not_before, NEW.current_not_after
		FROM issuances i WHERE i.id = NEW.current_id;
	RETURN NEW;
END
$$;
CREATE TRIGGER jobs_current_validity BEFORE INSERT OR UPDATE OF current_id ON jobs
	FOR EACH ROW EXECUTE FUNCTION jobs_current_validity();
