-- The name index (issue 13): one row per identifier of every enabled spec,
-- written in the same transaction as the spec (sqlstore), so that finding
-- the certificate of a name is one index lookup however many specs there
-- are, where the API used to rebuild a map of every spec after each PUT.
-- A name may be held by several specs (a config file's pack and its own);
-- the reader picks among them. Withdrawn specs have no rows.
CREATE TABLE spec_names (
	name text COLLATE "C" NOT NULL, -- an identifier's value (DNS name, wildcard, IP address)
	spec text COLLATE "C" NOT NULL, -- specs.name
	PRIMARY KEY (name, spec)
);
-- The rows of one spec, to replace them when it changes.
CREATE INDEX spec_names_spec ON spec_names (spec);

INSERT INTO spec_names (name, spec)
	SELECT DISTINCT j.value ->> 'value', s.name
	FROM specs s, jsonb_array_elements(s.spec::jsonb -> 'identifiers') j
	WHERE NOT s.disabled
	ON CONFLICT DO NOTHING;
