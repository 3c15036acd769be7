-- Keys at rest (issue 6): the store's data keys, each wrapped (encrypted) by
-- a master key that never enters the database; see package seal. Private
-- keys in accounts, jobs and issuances are sealed under the data key.
CREATE TABLE data_keys (
	id         TEXT    PRIMARY KEY,
	kek_id     TEXT    NOT NULL,
	wrapped    BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
