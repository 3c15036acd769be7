-- Ready before ordering (issue 14): the names whose self-test failed, as in
-- the SQLite store's 0020_waiting_names.sql. One row per (spec,
-- identifier); a name that passes loses its row; next_at is its re-test.
CREATE TABLE waiting_names (
	spec       text COLLATE "C" NOT NULL,
	id_type    text COLLATE "C" NOT NULL,
	id_value   text COLLATE "C" NOT NULL,
	challenge  text             NOT NULL,
	code       text             NOT NULL,
	reason     text             NOT NULL,
	since      timestamptz      NOT NULL,
	checked_at timestamptz      NOT NULL,
	next_at    timestamptz      NOT NULL,
	tests      integer          NOT NULL,
	PRIMARY KEY (spec, id_type, id_value)
);
