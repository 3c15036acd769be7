-- Keys at rest (issue 6): the database's data key, wrapped (encrypted) by a
-- master key that never enters the database; see package seal. Private keys
-- in accounts, jobs and issuances are sealed under it, as in the SQLite
-- store's 0004_data_keys.sql.
CREATE TABLE data_keys (
	id         text COLLATE "C" PRIMARY KEY,
	kek_id     text        NOT NULL,
	wrapped    bytea       NOT NULL,
	created_at timestamptz NOT NULL
);

-- One data key per database: instances starting at once on an empty
-- database insert with ON CONFLICT DO NOTHING, and exactly one row wins.
CREATE UNIQUE INDEX data_keys_one ON data_keys ((true));
