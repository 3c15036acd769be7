-- Deployment is part of a certificate's state (issue 15): whether the
-- current issuance is written where the configuration says, why not, and
-- when the files are tried again (their own schedule, not only the next
-- issuance's). deploy_error is '' once written.
ALTER TABLE jobs
	ADD COLUMN deploy_error     text        NOT NULL DEFAULT '',
	ADD COLUMN deploy_failures  integer     NOT NULL DEFAULT 0,
	ADD COLUMN deploy_failed_at timestamptz,
	ADD COLUMN deploy_next_at   timestamptz;

-- jobs_not_written serves JobFilter.NotWritten (the alert round, the deploy
-- retries): the few jobs not written, without a scan of every job.
CREATE INDEX jobs_not_written ON jobs (spec, key_type) WHERE deploy_error <> '';
