-- Deployment is part of a certificate's state (issue 15): whether the
-- current issuance is written where the configuration says, why not, and
-- when the files are tried again (their own schedule, not only the next
-- issuance's). deploy_error is '' once written.
ALTER TABLE jobs ADD COLUMN deploy_error     TEXT    NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN deploy_failures  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN deploy_failed_at INTEGER;
ALTER TABLE jobs ADD COLUMN deploy_next_at   INTEGER;

-- jobs_not_written serves JobFilter.NotWritten (the alert round, the deploy
-- retries): the few jobs not written, without a scan of every job.
CREATE INDEX jobs_not_written ON jobs (spec, key_type) WHERE deploy_error <> '';
