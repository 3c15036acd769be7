-- Initial schema. Times are INTEGER Unix microseconds (UTC), NULL for "none".
-- Booleans are INTEGER 0/1.

-- specs holds every certificate spec ever declared; withdrawn specs are
-- disabled, never deleted, so their archive keeps its parent.
CREATE TABLE specs (
	name       TEXT    PRIMARY KEY,
	source     TEXT    NOT NULL,
	disabled   INTEGER NOT NULL DEFAULT 0,
	spec       TEXT    NOT NULL, -- certfleet.CertificateSpec as JSON
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX specs_source ON specs (source, name);

-- issuances is the archive: one row per certificate issued, never deleted.
CREATE TABLE issuances (
	id            INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: IDs are never reused
	spec          TEXT    NOT NULL REFERENCES specs (name),
	key_type      TEXT    NOT NULL,
	spec_revision TEXT    NOT NULL,
	identifiers   TEXT    NOT NULL, -- JSON array of certfleet.Identifier
	serial        TEXT    NOT NULL,
	fingerprint   TEXT    NOT NULL,
	not_before    INTEGER,
	not_after     INTEGER,
	chain_pem     BLOB    NOT NULL,
	key_pem       BLOB,             -- sealed by sealKey; NULL in CSR mode
	ari_cert_id   TEXT    NOT NULL,
	ca            TEXT    NOT NULL,
	account_url   TEXT    NOT NULL,
	order_url     TEXT    NOT NULL,
	cert_url      TEXT    NOT NULL,
	issued_at     INTEGER,
	replaces      INTEGER           -- issuances.id, NULL for none
) STRICT;

CREATE INDEX issuances_lineage ON issuances (spec, key_type, id);

-- jobs is the renewal state of one (spec, key type).
CREATE TABLE jobs (
	id                INTEGER PRIMARY KEY,
	spec              TEXT    NOT NULL REFERENCES specs (name),
	key_type          TEXT    NOT NULL,
	-- target_revision is the spec's Revision(key_type) as last synced; a
	-- current issuance of another revision makes the job due at once.
	target_revision   TEXT    NOT NULL,
	next_at           INTEGER NOT NULL,
	lease_owner       TEXT    NOT NULL DEFAULT '', -- '' when free
	lease_until       INTEGER,                     -- NULL when free
	failures          INTEGER NOT NULL DEFAULT 0,
	last_error        TEXT    NOT NULL DEFAULT '',
	last_error_at     INTEGER,
	ari_start         INTEGER,
	ari_end           INTEGER,
	ari_retry_at      INTEGER,
	pending_order_url TEXT    NOT NULL DEFAULT '',
	pending_key       BLOB,                        -- sealed by sealKey
	current_id        INTEGER REFERENCES issuances (id),
	current_revision  TEXT    NOT NULL DEFAULT '',
	disabled          INTEGER NOT NULL DEFAULT 0,
	UNIQUE (spec, key_type)
) STRICT;

-- jobs_due serves ClaimDue and NextDue: enabled jobs in due order, with the
-- lease end in the index so that skipping leased jobs needs no table lookup.
CREATE INDEX jobs_due ON jobs (next_at, lease_until) WHERE disabled = 0;

-- attempts keeps the newest attempts of each job (older ones are pruned in
-- the transaction that adds a new one).
CREATE TABLE attempts (
	id           INTEGER PRIMARY KEY,
	job_id       INTEGER NOT NULL REFERENCES jobs (id),
	instance     TEXT    NOT NULL,
	started_at   INTEGER,
	finished_at  INTEGER,
	outcome      TEXT    NOT NULL,
	order_url    TEXT    NOT NULL,
	error        TEXT    NOT NULL,
	problem_type TEXT    NOT NULL
) STRICT;

CREATE INDEX attempts_job ON attempts (job_id, id);

CREATE TABLE accounts (
	ca         TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	contact    TEXT    NOT NULL, -- JSON array of URLs
	key_pem    BLOB    NOT NULL, -- sealed by sealKey
	url        TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (ca, name)
) STRICT;

CREATE TABLE challenges (
	type              TEXT    NOT NULL,
	key               TEXT    NOT NULL,
	key_authorization TEXT    NOT NULL,
	expires           INTEGER, -- NULL: never
	PRIMARY KEY (type, key)
) WITHOUT ROWID, STRICT;

CREATE INDEX challenges_expires ON challenges (expires) WHERE expires IS NOT NULL;
