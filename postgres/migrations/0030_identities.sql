-- Host identities (issue 17): certfleet's CA for client certificates, the
-- one-time enrollment tokens and the identities enrolled with them; as in
-- the SQLite store's 0030_identities.sql.

-- identity_cas holds the CA; key_pem is sealed like every private key
-- (package seal, bound to the CA's id) when the store has a master key.
CREATE TABLE identity_cas (
	id         text COLLATE "C" PRIMARY KEY,
	cert_pem   text        NOT NULL,
	key_pem    bytea       NOT NULL,
	created_at timestamptz NOT NULL
);

-- enroll_tokens: only the SHA-256 of a secret is kept; used_at is set once.
CREATE TABLE enroll_tokens (
	id          text COLLATE "C" PRIMARY KEY,
	description text        NOT NULL,
	names       text        NOT NULL, -- JSON array of name patterns
	permissions text        NOT NULL, -- JSON array of certfleet.Permission
	tenant      text        NOT NULL DEFAULT '',
	hash        bytea       NOT NULL UNIQUE,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,          -- NULL until a host enrolled with it
	used_by     text        NOT NULL DEFAULT ''
);

CREATE TABLE identities (
	id           text COLLATE "C" PRIMARY KEY,
	name         text        NOT NULL,
	names        text        NOT NULL,
	permissions  text        NOT NULL,
	tenant       text        NOT NULL DEFAULT '',
	enroll_token text        NOT NULL,
	serial       text        NOT NULL,
	not_after    timestamptz NOT NULL,
	renewed_at   timestamptz NOT NULL,
	created_at   timestamptz NOT NULL,
	revoked_at   timestamptz           -- NULL while valid
);
