-- Events out (issue 18): the audit events owed to hooks, one row per
-- (event, hook), written in the same transaction as the event, as in the
-- SQLite store's 0018_event_deliveries.sql. claim_owner/claim_until is the
-- right to send a delivery, taken with a conditional UPDATE so that one
-- instance at a time tries it; next_at is the backoff of a failed one.
CREATE TABLE event_deliveries (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	hook         text COLLATE "C" NOT NULL,
	event_id     bigint           NOT NULL, -- audit_events.id (no foreign key: the trail is append-only, and TRUNCATE of it must meet its own refusal)
	delivery_key text COLLATE "C" NOT NULL, -- the idempotency key receivers see
	created_at   timestamptz      NOT NULL,
	next_at      timestamptz      NOT NULL,
	attempts     integer          NOT NULL DEFAULT 0,
	last_error   text             NOT NULL DEFAULT '',
	delivered_at timestamptz,                -- NULL while owed
	claim_owner  text             NOT NULL DEFAULT '', -- '' when unclaimed
	claim_until  timestamptz
);

CREATE UNIQUE INDEX event_deliveries_key ON event_deliveries (delivery_key, hook);
CREATE INDEX event_deliveries_owed ON event_deliveries (hook, event_id) WHERE delivered_at IS NULL;
