-- Account management and key compromise (issue 6 §7, §8), as in the SQLite
-- store's 0008_accounts.sql.

-- An account's status (RFC 8555 §7.1.2): a deactivated account is never
-- used nor silently registered again. pending_key is the new key of a key
-- rollover (RFC 8555 §7.3.5) stored before the CA is asked, so that a crash
-- between the CA's acceptance and the store write loses no key: whoever uses
-- the account next asks the CA which key it knows. Sealed by sealKey.
ALTER TABLE accounts ADD COLUMN status text NOT NULL DEFAULT 'valid';
ALTER TABLE accounts ADD COLUMN deactivated_at timestamptz;
ALTER TABLE accounts ADD COLUMN key_changed_at timestamptz;
ALTER TABLE accounts ADD COLUMN pending_key bytea;

-- blocked_keys: keys declared compromised (certfleet compromise), by key ID
-- (hex SHA-256 of the SubjectPublicKeyInfo). The scheduler never orders a
-- certificate with one of them, even for reuse_key specs.
CREATE TABLE blocked_keys (
	key_id     text COLLATE "C" PRIMARY KEY,
	reason     text        NOT NULL,
	actor      text        NOT NULL,
	blocked_at timestamptz NOT NULL
);
