-- Alerts (issue 6): incidents of the alert conditions (package alert) and
-- what was announced about them, as in the SQLite store's 0007_alerts.sql.
-- At most one open incident per incident_key (a partial unique index, which
-- also settles two instances opening the same incident at once);
-- claim_owner/claim_until is the right to send the pending notification,
-- taken with a conditional UPDATE so that exactly one instance sends it.
CREATE TABLE incidents (
	id                  bigserial PRIMARY KEY,
	incident_key        text COLLATE "C" NOT NULL,
	kind                text COLLATE "C" NOT NULL,
	spec                text COLLATE "C" NOT NULL,
	key_type            text COLLATE "C" NOT NULL,
	subject             text        NOT NULL,
	severity            text        NOT NULL,
	severity_rank       integer     NOT NULL,
	summary             text        NOT NULL,
	serial              text        NOT NULL,
	not_after           timestamptz,
	failures            integer     NOT NULL,
	last_error          text        NOT NULL,
	opened_at           timestamptz NOT NULL,
	updated_at          timestamptz NOT NULL,
	resolved_at         timestamptz,                  -- NULL while open
	notified_severity   text        NOT NULL DEFAULT '',
	notified_rank       integer     NOT NULL DEFAULT 0,
	notified_at         timestamptz,
	resolution_notified boolean     NOT NULL DEFAULT false,
	delivery_attempts   integer     NOT NULL DEFAULT 0,
	delivery_error      text        NOT NULL DEFAULT '',
	claim_owner         text        NOT NULL DEFAULT '', -- '' when unclaimed
	claim_until         timestamptz,
	-- settled: resolved and owed nothing more (its resolution announced,
	-- or nothing was ever announced or tried).
	settled             boolean     NOT NULL DEFAULT false
);

CREATE UNIQUE INDEX incidents_open ON incidents (incident_key) WHERE resolved_at IS NULL;
CREATE INDEX incidents_by_key ON incidents (incident_key, resolved_at);
CREATE INDEX incidents_unsettled ON incidents (id) WHERE NOT settled;
