-- Host identities (issue 17): certfleet's CA for client certificates, the
-- one-time enrollment tokens and the identities enrolled with them.

-- identity_cas holds the CA; key_pem is sealed like every private key
-- (package seal, bound to the CA's id) when the store has a master key.
CREATE TABLE identity_cas (
	id         TEXT    PRIMARY KEY,
	cert_pem   TEXT    NOT NULL,
	key_pem    BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

-- enroll_tokens: only the SHA-256 of a secret is kept; used_at is set once.
CREATE TABLE enroll_tokens (
	id          TEXT    PRIMARY KEY,
	description TEXT    NOT NULL,
	names       TEXT    NOT NULL, -- JSON array of name patterns
	permissions TEXT    NOT NULL, -- JSON array of certfleet.Permission
	tenant      TEXT    NOT NULL DEFAULT '',
	hash        BLOB    NOT NULL UNIQUE,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	used_at     INTEGER,          -- NULL until a host enrolled with it
	used_by     TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE identities (
	id           TEXT    PRIMARY KEY,
	name         TEXT    NOT NULL,
	names        TEXT    NOT NULL,
	permissions  TEXT    NOT NULL,
	tenant       TEXT    NOT NULL DEFAULT '',
	enroll_token TEXT    NOT NULL,
	serial       TEXT    NOT NULL,
	not_after    INTEGER NOT NULL,
	renewed_at   INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	revoked_at   INTEGER           -- NULL while valid
) STRICT;
