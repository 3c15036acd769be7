-- The listings' failing filter by index (issue 13): at 100,000 certificates
-- it was a scan of every spec (0.5 to 1.8 s a page). After 0022, which
-- added deploy_error.
--
-- jobs_failing: the enabled jobs whose last attempt failed, or whose
-- certificate is issued and not written (JobFilter.Failing), in spec
-- order: the failing filter walks it from the cursor. The database keeps
-- it in the transaction that changes the job.
CREATE INDEX jobs_failing ON jobs (spec, key_type) WHERE NOT disabled AND (failures > 0 OR deploy_error <> '');
