-- The alert rounds' expiry look by index (issue 13), as in the SQLite
-- store's 0037_jobs_expiry.sql: every round read every enabled job joined
-- with its current issuance, in (spec, key type) order, to keep those
-- expiring before the widest warning window: at 100,000 certificates,
-- 100,000 rows a round for the few near their end.
--
-- jobs_expiry: the enabled jobs by their current certificate's not-after
-- (current_not_after, 0036), those with one only: a round reads the range
-- below its bound and nothing else.
CREATE INDEX jobs_expiry ON jobs (current_not_after) WHERE NOT disabled AND current_not_after IS NOT NULL;
