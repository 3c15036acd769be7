-- The HTTP API (issue 7): tokens and the log of private key reads, as in the
-- SQLite store's 0002_api.sql.

-- api_tokens holds API credentials; only the SHA-256 of a secret is kept.
CREATE TABLE api_tokens (
	id             text COLLATE "C" PRIMARY KEY,
	description    text        NOT NULL,
	names          text        NOT NULL, -- JSON array of name patterns
	permissions    text        NOT NULL, -- JSON array of certfleet.Permission
	url_credential boolean     NOT NULL DEFAULT false,
	hash           bytea       NOT NULL UNIQUE, -- TokenByHash, on every request
	created_at     timestamptz NOT NULL,
	revoked_at     timestamptz             -- NULL while valid
);

-- key_reads is append-only: one row per private key sent over the API.
CREATE TABLE key_reads (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	token_id    text        NOT NULL,
	spec        text        NOT NULL,
	key_type    text        NOT NULL,
	issuance_id bigint      NOT NULL,
	serial      text        NOT NULL,
	remote      text        NOT NULL,
	at          timestamptz NOT NULL
);

-- Ours, beyond the SQLite store: the database itself refuses to change or
-- delete a key read, so neither a bug nor a stray statement run with
-- certfleet's role rewrites the audit trail (an owner can still drop the
-- trigger: it guards against accidents, not against the database's owner).
CREATE FUNCTION key_reads_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'key_reads is append-only: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER key_reads_append_only BEFORE UPDATE OR DELETE ON key_reads
	FOR EACH ROW EXECUTE FUNCTION key_reads_append_only();
CREATE TRIGGER key_reads_no_truncate BEFORE TRUNCATE ON key_reads
	FOR EACH STATEMENT EXECUTE FUNCTION key_reads_append_only();
