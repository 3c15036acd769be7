-- Ready before ordering (issue 14): the names whose self-test failed, left
-- out of their certificate's orders until a re-test passes. One row per
-- (spec, identifier); a name that passes loses its row. next_at is the
-- re-test time (its own backoff, tests failed in a row).
CREATE TABLE waiting_names (
	spec       TEXT    NOT NULL,
	id_type    TEXT    NOT NULL,
	id_value   TEXT    NOT NULL,
	challenge  TEXT    NOT NULL,
	code       TEXT    NOT NULL,
	reason     TEXT    NOT NULL,
	since      INTEGER NOT NULL,
	checked_at INTEGER NOT NULL,
	next_at    INTEGER NOT NULL,
	tests      INTEGER NOT NULL,
	PRIMARY KEY (spec, id_type, id_value)
) STRICT;
