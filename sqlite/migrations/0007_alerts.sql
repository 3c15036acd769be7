-- Alerts (issue 6): incidents of the alert conditions (package alert) and
-- what was announced about them. At most one open incident per
-- incident_key; a condition that returns after it was resolved is a new row.
-- Several instances evaluate at once: observations carry their time
-- (updated_at, resolved_at) and the newest wins; claim_owner/claim_until
-- is the right to send the pending notification, taken with a conditional
-- UPDATE so that exactly one instance sends it.
CREATE TABLE incidents (
	id                  INTEGER PRIMARY KEY AUTOINCREMENT,
	incident_key        TEXT    NOT NULL,
	kind                TEXT    NOT NULL,
	spec                TEXT    NOT NULL,
	key_type            TEXT    NOT NULL,
	subject             TEXT    NOT NULL,
	severity            TEXT    NOT NULL,
	severity_rank       INTEGER NOT NULL,
	summary             TEXT    NOT NULL,
	serial              TEXT    NOT NULL,
	not_after           INTEGER,
	failures            INTEGER NOT NULL,
	last_error          TEXT    NOT NULL,
	opened_at           INTEGER NOT NULL,
	updated_at          INTEGER NOT NULL,
	resolved_at         INTEGER,                      -- NULL while open
	notified_severity   TEXT    NOT NULL DEFAULT '',
	notified_rank       INTEGER NOT NULL DEFAULT 0,
	notified_at         INTEGER,
	resolution_notified INTEGER NOT NULL DEFAULT 0,
	delivery_attempts   INTEGER NOT NULL DEFAULT 0,
	delivery_error      TEXT    NOT NULL DEFAULT '',
	claim_owner         TEXT    NOT NULL DEFAULT '',  -- '' when unclaimed
	claim_until         INTEGER,
	-- settled: resolved and owed nothing more (its resolution announced,
	-- or nothing was ever announced or tried).
	settled             INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE UNIQUE INDEX incidents_open ON incidents (incident_key) WHERE resolved_at IS NULL;
CREATE INDEX incidents_by_key ON incidents (incident_key, resolved_at);
CREATE INDEX incidents_unsettled ON incidents (id) WHERE settled = 0;
