-- The HTTP API (issue 7): tokens and the log of private key reads.

-- api_tokens holds API credentials; only the SHA-256 of a secret is kept.
CREATE TABLE api_tokens (
	id             TEXT    PRIMARY KEY,
	description    TEXT    NOT NULL,
	names          TEXT    NOT NULL, -- JSON array of name patterns
	permissions    TEXT    NOT NULL, -- JSON array of certfleet.Permission
	url_credential INTEGER NOT NULL DEFAULT 0,
	hash           BLOB    NOT NULL UNIQUE,
	created_at     INTEGER NOT NULL,
	revoked_at     INTEGER           -- NULL while valid
) STRICT;

-- key_reads is append-only: one row per private key sent over the API.
CREATE TABLE key_reads (
	id          INTEGER PRIMARY KEY,
	token_id    TEXT    NOT NULL,
	spec        TEXT    NOT NULL,
	key_type    TEXT    NOT NULL,
	issuance_id INTEGER NOT NULL,
	serial      TEXT    NOT NULL,
	remote      TEXT    NOT NULL,
	at          INTEGER NOT NULL
) STRICT;
