-- The listings' search by index (issue 13): at 100,000 certificates a
-- "contains" search was a scan of every spec (0.5 to 1.8 s a page). As in the SQLite store's
-- 0021_spec_terms.sql.
--
-- spec_terms holds, for every enabled spec, the terms it is found by
-- (certfleet.SearchTerms of its name and identifiers: the whole name,
-- whole labels at its start or end, each label), written in the same
-- transaction as the spec (sqlstore). A search is one index range in spec
-- name order from the cursor: (term, spec).
CREATE TABLE spec_terms (
	term text COLLATE "C" NOT NULL,
	spec text COLLATE "C" NOT NULL, -- specs.name
	PRIMARY KEY (term, spec)
);
-- The rows of one spec, to replace them when it changes.
CREATE INDEX spec_terms_spec ON spec_terms (spec);

-- The terms of the specs there are (SearchTerms, in SQL).
INSERT INTO spec_terms (term, spec)
	SELECT DISTINCT t, spec FROM (
		SELECT s.name AS spec, lower(s.name) AS t FROM specs s WHERE NOT s.disabled
		UNION ALL
		SELECT s.name, lower(j ->> 'value') FROM specs s, jsonb_array_elements(s.spec::jsonb -> 'identifiers') j WHERE NOT s.disabled
		UNION ALL
		SELECT d.spec, x.t FROM (
			SELECT s.name AS spec, string_to_array(regexp_replace(lower(j ->> 'value'), '^\*\.', ''), '.') AS a
			FROM specs s, jsonb_array_elements(s.spec::jsonb -> 'identifiers') j
			WHERE NOT s.disabled AND j ->> 'type' <> 'ip'
			UNION ALL
			SELECT s.name, string_to_array(lower(s.name), '.') FROM specs s WHERE NOT s.disabled
		) d, LATERAL (
			SELECT array_to_string(d.a[1:i], '.') FROM generate_series(1, cardinality(d.a)) i
			UNION ALL SELECT array_to_string(d.a[i:cardinality(d.a)], '.') FROM generate_series(1, cardinality(d.a)) i
			UNION ALL SELECT d.a[i] FROM generate_series(1, cardinality(d.a)) i
		) x(t)
	) terms
	WHERE t <> '' AND t <> '*' AND length(t) <= 253
	ON CONFLICT DO NOTHING;
