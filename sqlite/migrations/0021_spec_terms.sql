-- The listings' search by index (issue 13): at 100,000 certificates a
-- "contains" search was a scan of every spec (0.5 to 1.8 s a page).
--
-- spec_terms holds, for every enabled spec, the terms it is found by
-- (certfleet.SearchTerms of its name and identifiers: the whole name,
-- whole labels at its start or end, each label), written in the same
-- transaction as the spec (sqlstore). A search is one index range in spec
-- name order from the cursor: (term, spec).
CREATE TABLE spec_terms (
	term TEXT NOT NULL,
	spec TEXT NOT NULL, -- specs.name
	PRIMARY KEY (term, spec)
) WITHOUT ROWID, STRICT;
-- The rows of one spec, to replace them when it changes.
CREATE INDEX spec_terms_spec ON spec_terms (spec);

-- The terms of the specs there are (SearchTerms, in SQL).
WITH RECURSIVE
names(spec, n, ip) AS (
	SELECT s.name, lower(s.name), 0 FROM specs s WHERE s.disabled = 0
	UNION
	SELECT s.name, lower(json_extract(j.value, '$.value')), json_extract(j.value, '$.type') = 'ip'
	FROM specs s, json_each(s.spec, '$.identifiers') j WHERE s.disabled = 0
),
dns(spec, n) AS (
	SELECT spec, CASE WHEN n LIKE '*.%' THEN substr(n, 3) ELSE n END FROM names WHERE NOT ip
),
suf(spec, t) AS (
	SELECT spec, n FROM dns
	UNION
	SELECT spec, substr(t, instr(t, '.') + 1) FROM suf WHERE instr(t, '.') > 0
),
pre(spec, p, rest) AS (
	SELECT spec,
		CASE WHEN instr(n, '.') > 0 THEN substr(n, 1, instr(n, '.') - 1) ELSE n END,
		CASE WHEN instr(n, '.') > 0 THEN substr(n, instr(n, '.') + 1) ELSE '' END
	FROM dns
	UNION
	SELECT spec,
		p || '.' || CASE WHEN instr(rest, '.') > 0 THEN substr(rest, 1, instr(rest, '.') - 1) ELSE rest END,
		CASE WHEN instr(rest, '.') > 0 THEN substr(rest, instr(rest, '.') + 1) ELSE '' END
	FROM pre WHERE rest <> ''
),
terms(spec, t) AS (
	SELECT spec, n FROM names
	UNION SELECT spec, t FROM suf
	UNION SELECT spec, p FROM pre
	UNION SELECT spec, CASE WHEN instr(t, '.') > 0 THEN substr(t, 1, instr(t, '.') - 1) ELSE t END FROM suf
)
INSERT OR IGNORE INTO spec_terms (term, spec)
	SELECT t, spec FROM terms WHERE t <> '' AND t <> '*' AND length(t) <= 253;
