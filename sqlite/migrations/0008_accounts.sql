-- Account management and key compromise (issue 6 §7, §8).

-- An account's status (RFC 8555 §7.1.2): a deactivated account is never
-- used nor silently registered again. pending_key is the new key of a key
-- rollover (RFC 8555 §7.3.5) stored before the CA is asked, so that a crash
-- between the CA's acceptance and the store write loses no key: whoever uses
-- the account next asks the CA which key it knows. Sealed by sealKey.
ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'valid';
ALTER TABLE accounts ADD COLUMN deactivated_at INTEGER;
ALTER TABLE accounts ADD COLUMN key_changed_at INTEGER;
ALTER TABLE accounts ADD COLUMN pending_key BLOB;

-- blocked_keys: keys declared compromised (certfleet compromise), by key ID
-- (hex SHA-256 of the SubjectPublicKeyInfo). The scheduler never orders a
-- certificate with one of them, even for reuse_key specs.
CREATE TABLE blocked_keys (
	key_id     TEXT    PRIMARY KEY,
	reason     TEXT    NOT NULL,
	actor      TEXT    NOT NULL,
	blocked_at INTEGER NOT NULL
) WITHOUT ROWID, STRICT;
