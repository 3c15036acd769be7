-- Events out (issue 18): the audit events owed to hooks (webhooks, UNIX
-- sockets, commands), one row per (event, hook), written in the same
-- transaction as the event. A row is owed until delivered_at is set;
-- claim_owner/claim_until is the right to send it, taken with a
-- conditional UPDATE so that one instance at a time tries it; next_at is
-- when a failed delivery may be tried again (the backoff).
CREATE TABLE event_deliveries (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	hook         TEXT    NOT NULL,
	event_id     INTEGER NOT NULL, -- audit_events.id (no foreign key, as in the PostgreSQL table: the trail is append-only anyway)
	delivery_key TEXT    NOT NULL, -- the idempotency key receivers see
	created_at   INTEGER NOT NULL,
	next_at      INTEGER NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT    NOT NULL DEFAULT '',
	delivered_at INTEGER,           -- NULL while owed
	claim_owner  TEXT    NOT NULL DEFAULT '', -- '' when unclaimed
	claim_until  INTEGER
) STRICT;

-- One delivery per key and hook; RecordOwedEvent looks a key up by itself.
CREATE UNIQUE INDEX event_deliveries_key ON event_deliveries (delivery_key, hook);
-- What is owed, per hook, oldest event first: delivered rows leave the index.
CREATE INDEX event_deliveries_owed ON event_deliveries (hook, event_id) WHERE delivered_at IS NULL;
