-- The listings' status filters in the store (issue 13): a certificate's
-- status (ok, renewing, pending, failing, expiring, expired) depends on its
-- current certificates' validity, which lived only in issuances, a join away
-- and not indexed per job. At 100,000 certificates the dashboard read up to
-- four pages of every row and judged each in Go.
--
-- current_not_before and current_not_after copy the validity of the job's
-- current issuance (current_id), NULL without one. Issuances never change,
-- so the copy only follows current_id: the triggers below set it whenever a
-- job is inserted with one or current_id is written, whatever statement
-- does it. Backfilled here for the jobs issued before.
ALTER TABLE jobs ADD COLUMN current_not_before INTEGER;
ALTER TABLE jobs ADD COLUMN current_not_after INTEGER;

UPDATE jobs SET
	current_not_before = (SELECT i.not_before FROM issuances i WHERE i.id = jobs.current_id),
	current_not_after = (SELECT i.not_after FROM issuances i WHERE i.id = jobs.current_id)
WHERE current_id IS NOT NULL;

CREATE TRIGGER jobs_current_validity AFTER UPDATE OF current_id ON jobs
BEGIN
	UPDATE jobs SET
		current_not_before = (SELECT i.not_before FROM issuances i WHERE i.id = NEW.current_id),
		current_not_after = (SELECT i.not_after FROM issuances i WHERE i.id = NEW.current_id)
	WHERE id = NEW.id;
END;

CREATE TRIGGER jobs_current_validity_insert AFTER INSERT ON jobs WHEN NEW.current_id IS NOT NULL
BEGIN
	UPDATE jobs SET
		current_not_before = (SELECT i.not_before FROM issuances i WHERE i.id = NEW.current_id),
		current_not_after = (SELECT i.not_after FROM issuances i WHERE i.id = NEW.current_id)
	WHERE id = NEW.id;
END;
