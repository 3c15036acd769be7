-- Tenants (issue 12): the customers of a shared certfleet, the ACME accounts
-- declared at runtime, and the tenant of every spec, token and issuance.

-- tenants: a customer's name patterns (JSON array; no two tenants' overlap,
-- checked under the spec lock), its ACME account ('' = the shared default)
-- and its quotas (0 = no limit).
CREATE TABLE tenants (
	name            TEXT    PRIMARY KEY,
	description     TEXT    NOT NULL,
	names           TEXT    NOT NULL,
	account         TEXT    NOT NULL,
	max_names       INTEGER NOT NULL,
	orders_per_week INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL
) WITHOUT ROWID, STRICT;
CREATE INDEX tenants_account ON tenants (account);

-- account_settings: ACME accounts declared over the API or the CLI (the
-- config's [accounts.NAME] are not stored here). eab_hmac_key is sealed
-- (package seal, bound to the account's name); NULL without EAB.
CREATE TABLE account_settings (
	name          TEXT    PRIMARY KEY,
	directory     TEXT    NOT NULL,
	email         TEXT    NOT NULL,
	eab_key_id    TEXT    NOT NULL,
	eab_hmac_key  BLOB,
	trusted_roots BLOB,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
) WITHOUT ROWID, STRICT;

-- The tenant of each spec ('' = the operator's). The index serves a
-- tenant's certificates (its quota, its listing) and, with the name, the
-- per-tenant name lookups and pages to come.
ALTER TABLE specs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX specs_tenant ON specs (tenant, name);

-- The tenant a token is bound to ('' = an operator's token).
ALTER TABLE api_tokens ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX api_tokens_tenant ON api_tokens (tenant) WHERE tenant <> '';

-- The tenant a certificate was ordered for: the authorization rule is
-- applied to the certificate as issued.
ALTER TABLE issuances ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
