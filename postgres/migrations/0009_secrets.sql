-- Stored secrets (issue 6, keys at rest): TSIG secrets, EAB MAC keys and DNS
-- API passwords that the config names as "store:NAME" instead of holding.
-- value is always sealed under the data key (package seal), bound to name;
-- as in the SQLite store's 0009_secrets.sql.
CREATE TABLE secrets (
	name       text COLLATE "C" PRIMARY KEY,
	value      bytea       NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
