-- Stored secrets (issue 6, keys at rest): TSIG secrets, EAB MAC keys and DNS
-- API passwords that the config names as "store:NAME" instead of holding.
-- value is always sealed under the data key (package seal), bound to name.
CREATE TABLE secrets (
	name       TEXT    PRIMARY KEY,
	value      BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;
