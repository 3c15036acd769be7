-- The name index (issue 13): one row per identifier of every enabled spec,
-- written in the same transaction as the spec (sqlstore), so that finding
-- the certificate of a name is one index lookup however many specs there
-- are, where the API used to rebuild a map of every spec after each PUT.
-- A name may be held by several specs (a config file's pack and its own);
-- the reader picks among them. Withdrawn specs have no rows.
CREATE TABLE spec_names (
	name TEXT NOT NULL, -- an identifier's value (DNS name, wildcard, IP address)
	spec TEXT NOT NULL, -- specs.name
	PRIMARY KEY (name, spec)
) WITHOUT ROWID, STRICT;
-- The rows of one spec, to replace them when it changes.
CREATE INDEX spec_names_spec ON spec_names (spec);

INSERT OR IGNORE INTO spec_names (name, spec)
	SELECT json_extract(j.value, '$.value'), s.name
	FROM specs s, json_each(s.spec, '$.identifiers') j
	WHERE s.disabled = 0;
