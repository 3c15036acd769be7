-- The agents (issue 4): what each agent last reported it installed, per
-- certificate and key type, for the fleet view. One row per (agent,
-- certificate, key type); a newer report replaces it.
CREATE TABLE agent_reports (
	agent        TEXT    NOT NULL,
	spec         TEXT    NOT NULL,
	key_type     TEXT    NOT NULL,
	serial       TEXT    NOT NULL,
	fingerprint  TEXT    NOT NULL,
	not_after    INTEGER,          -- NULL: nothing installed yet
	installed_at INTEGER,          -- NULL: nothing installed yet
	commands     TEXT    NOT NULL, -- JSON array of certfleet.AgentCommand
	error        TEXT    NOT NULL,
	reported_at  INTEGER NOT NULL,
	token_id     TEXT    NOT NULL,
	PRIMARY KEY (spec, key_type, agent)
) STRICT;

CREATE INDEX agent_reports_by_agent ON agent_reports (agent);
