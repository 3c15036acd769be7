-- The audit trail (issue 6): one row per event (certfleet.Event), never
-- updated or deleted. Times are Unix microseconds, as everywhere.
CREATE TABLE audit_events (
	id          INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: IDs are never reused
	at          INTEGER NOT NULL,
	kind        TEXT    NOT NULL,
	actor       TEXT    NOT NULL,
	actor_type  TEXT    NOT NULL, -- actor before its first ':', for prefix filters
	remote      TEXT    NOT NULL,
	certificate TEXT    NOT NULL, -- spec name, '' for none
	key_type    TEXT    NOT NULL,
	serial      TEXT    NOT NULL,
	issuance_id INTEGER NOT NULL, -- 0 for none (no foreign key: an event outlives nothing, but needs nothing either)
	reason      TEXT    NOT NULL,
	detail      TEXT    NOT NULL  -- at most certfleet.MaxEventDetail bytes, cut with a visible note
) STRICT;

-- Listing is newest first by (at, id); every filter has an index in that
-- order, so a page is a range scan that stops after LIMIT rows, whatever
-- the table's size: no filter, a time range, or one equality filter with
-- or without a time range. Two equality filters use one index and check
-- the other on the rows it yields.
CREATE INDEX audit_events_at          ON audit_events (at, id);
CREATE INDEX audit_events_certificate ON audit_events (certificate, at, id);
CREATE INDEX audit_events_kind        ON audit_events (kind, at, id);
CREATE INDEX audit_events_actor       ON audit_events (actor, at, id);
CREATE INDEX audit_events_actor_type  ON audit_events (actor_type, at, id);

-- Append-only, enforced by the database: neither a bug nor a stray
-- statement rewrites the trail. (SQLite cannot stop DROP TABLE, or
-- someone with the file and a hex editor: this guards against accidents.)
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;

-- key_reads becomes append-only here too, as it is in PostgreSQL since
-- 0002_api.sql.
CREATE TRIGGER key_reads_no_update BEFORE UPDATE ON key_reads
BEGIN
	SELECT RAISE(ABORT, 'key_reads is append-only: UPDATE refused');
END;
CREATE TRIGGER key_reads_no_delete BEFORE DELETE ON key_reads
BEGIN
	SELECT RAISE(ABORT, 'key_reads is append-only: DELETE refused');
END;

-- Every key read is also an audit event, written in the same transaction
-- as its key_reads row from now on (RecordKeyRead); the reads logged before
-- this migration join the trail here, in their order.
INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
	SELECT at, 'key_read', 'token:' || token_id, 'token', remote, spec, key_type, serial, issuance_id, '', ''
	FROM key_reads ORDER BY id;
