-- Tenants (issue 12): the customers of a shared certfleet, the ACME accounts
-- declared at runtime, and the tenant of every spec, token and issuance; as
-- in the SQLite store's 0010_tenants.sql.

-- tenants: a customer's name patterns (JSON array; no two tenants' overlap,
-- checked under the spec lock), its ACME account ('' = the shared default)
-- and its quotas (0 = no limit).
CREATE TABLE tenants (
	name            text COLLATE "C" PRIMARY KEY,
	description     text        NOT NULL,
	names           text        NOT NULL,
	account         text COLLATE "C" NOT NULL,
	max_names       integer     NOT NULL,
	orders_per_week integer     NOT NULL,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL
);
CREATE INDEX tenants_account ON tenants (account);

-- account_settings: ACME accounts declared over the API or the CLI (the
-- config's [accounts.NAME] are not stored here). eab_hmac_key is sealed
-- (package seal, bound to the account's name); NULL without EAB.
CREATE TABLE account_settings (
	name          text COLLATE "C" PRIMARY KEY,
	directory     text        NOT NULL,
	email         text        NOT NULL,
	eab_key_id    text        NOT NULL,
	eab_hmac_key  bytea,
	trusted_roots bytea,
	created_at    timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL
);

-- The tenant of each spec ('' = the operator's). The index serves a
-- tenant's certificates (its quota, its listing) and, with the name, the
-- per-tenant name lookups and pages to come.
ALTER TABLE specs ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX specs_tenant ON specs (tenant, name);

-- The tenant a token is bound to ('' = an operator's token).
ALTER TABLE api_tokens ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX api_tokens_tenant ON api_tokens (tenant) WHERE tenant <> '';

-- The tenant a certificate was ordered for: the authorization rule is
-- applied to the certificate as issued.
ALTER TABLE issuances ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT '';
