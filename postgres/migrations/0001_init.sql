-- Initial schema. Times are timestamptz (microseconds), NULL for "none".
-- Names and key types sort bytewise (COLLATE "C"), as in the SQLite store,
-- whatever the database's locale.

-- specs holds every certificate spec ever declared; withdrawn specs are
-- disabled, never deleted, so their archive keeps its parent.
CREATE TABLE specs (
	name       text COLLATE "C" PRIMARY KEY,
	source     text        NOT NULL,
	disabled   boolean     NOT NULL DEFAULT false,
	spec       text        NOT NULL, -- certfleet.CertificateSpec as JSON, compared as text
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

CREATE INDEX specs_source ON specs (source, name);

-- issuances is the archive: one row per certificate issued, never deleted.
CREATE TABLE issuances (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	spec          text COLLATE "C" NOT NULL REFERENCES specs (name),
	key_type      text COLLATE "C" NOT NULL,
	spec_revision text        NOT NULL,
	identifiers   text        NOT NULL, -- JSON array of certfleet.Identifier
	serial        text        NOT NULL,
	fingerprint   text        NOT NULL,
	not_before    timestamptz,
	not_after     timestamptz,
	chain_pem     bytea       NOT NULL,
	key_pem       bytea,                -- sealed by sealKey; NULL in CSR mode
	ari_cert_id   text        NOT NULL,
	ca            text        NOT NULL,
	account_url   text        NOT NULL,
	order_url     text        NOT NULL,
	cert_url      text        NOT NULL,
	issued_at     timestamptz,
	replaces      bigint                -- issuances.id, NULL for none
);

CREATE INDEX issuances_lineage ON issuances (spec, key_type, id);

-- jobs is the renewal state of one (spec, key type).
CREATE TABLE jobs (
	id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	spec              text COLLATE "C" NOT NULL REFERENCES specs (name),
	key_type          text COLLATE "C" NOT NULL,
	-- target_revision is the spec's Revision(key_type) as last synced; a
	-- current issuance of another revision makes the job due at once.
	target_revision   text        NOT NULL,
	next_at           timestamptz NOT NULL,
	lease_owner       text        NOT NULL DEFAULT '', -- '' when free
	lease_until       timestamptz,                     -- NULL when free
	failures          integer     NOT NULL DEFAULT 0,
	last_error        text        NOT NULL DEFAULT '',
	last_error_at     timestamptz,
	ari_start         timestamptz,
	ari_end           timestamptz,
	ari_retry_at      timestamptz,
	pending_order_url text        NOT NULL DEFAULT '',
	pending_key       bytea,                           -- sealed by sealKey
	current_id        bigint REFERENCES issuances (id),
	current_revision  text        NOT NULL DEFAULT '',
	disabled          boolean     NOT NULL DEFAULT false,
	UNIQUE (spec, key_type)
);

-- jobs_due serves ClaimDue and NextDue: enabled jobs in due order.
CREATE INDEX jobs_due ON jobs (next_at) WHERE NOT disabled;
-- jobs_leased serves JobFilter.Leased (release of dead instances' leases).
CREATE INDEX jobs_leased ON jobs (spec, key_type) WHERE lease_owner <> '';

-- attempts keeps the newest attempts of each job (older ones are pruned in
-- the transaction that adds a new one).
CREATE TABLE attempts (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	job_id       bigint      NOT NULL REFERENCES jobs (id),
	instance     text        NOT NULL,
	started_at   timestamptz,
	finished_at  timestamptz,
	outcome      text        NOT NULL,
	order_url    text        NOT NULL,
	error        text        NOT NULL,
	problem_type text        NOT NULL
);

CREATE INDEX attempts_job ON attempts (job_id, id);

CREATE TABLE accounts (
	ca         text        NOT NULL,
	name       text        NOT NULL,
	contact    text        NOT NULL, -- JSON array of URLs
	key_pem    bytea       NOT NULL, -- sealed by sealKey
	url        text        NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (ca, name)
);

CREATE TABLE challenges (
	type              text        NOT NULL,
	key               text        NOT NULL,
	key_authorization text        NOT NULL,
	expires           timestamptz, -- NULL: never
	PRIMARY KEY (type, key)
);

CREATE INDEX challenges_expires ON challenges (expires) WHERE expires IS NOT NULL;
