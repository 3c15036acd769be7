-- The agents (issue 4): what each agent last reported it installed, per
-- certificate and key type, for the fleet view, as in the SQLite store's
-- 0003_agents.sql. A newer report replaces the row.
CREATE TABLE agent_reports (
	agent        text COLLATE "C" NOT NULL,
	spec         text COLLATE "C" NOT NULL,
	key_type     text COLLATE "C" NOT NULL,
	serial       text        NOT NULL,
	fingerprint  text        NOT NULL,
	not_after    timestamptz,          -- NULL: nothing installed yet
	installed_at timestamptz,          -- NULL: nothing installed yet
	commands     text        NOT NULL, -- JSON array of certfleet.AgentCommand
	error        text        NOT NULL,
	reported_at  timestamptz NOT NULL,
	token_id     text        NOT NULL,
	PRIMARY KEY (spec, key_type, agent)
);

CREATE INDEX agent_reports_by_agent ON agent_reports (agent);
