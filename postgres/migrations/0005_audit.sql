-- The audit trail (issue 6): one row per event (certfleet.Event), never
-- updated or deleted, as in the SQLite store's 0005_audit.sql.
CREATE TABLE audit_events (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at          timestamptz      NOT NULL,
	kind        text COLLATE "C" NOT NULL,
	actor       text COLLATE "C" NOT NULL,
	actor_type  text COLLATE "C" NOT NULL, -- actor before its first ':', for prefix filters
	remote      text             NOT NULL,
	certificate text COLLATE "C" NOT NULL, -- spec name, '' for none
	key_type    text             NOT NULL,
	serial      text             NOT NULL,
	issuance_id bigint           NOT NULL, -- 0 for none
	reason      text             NOT NULL,
	detail      text             NOT NULL  -- at most certfleet.MaxEventDetail bytes, cut with a visible note
);

-- Listing is newest first by (at, id); every filter has an index in that
-- order, so a page is a backward range scan that stops after LIMIT rows,
-- whatever the table's size.
CREATE INDEX audit_events_at          ON audit_events (at, id);
CREATE INDEX audit_events_certificate ON audit_events (certificate, at, id);
CREATE INDEX audit_events_kind        ON audit_events (kind, at, id);
CREATE INDEX audit_events_actor       ON audit_events (actor, at, id);
CREATE INDEX audit_events_actor_type  ON audit_events (actor_type, at, id);

-- Append-only, enforced by the database as for key_reads (0002_api.sql):
-- UPDATE, DELETE and TRUNCATE are refused for certfleet's role (an owner
-- can still drop the trigger: it guards against accidents, not against
-- the database's owner).
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Every key read is also an audit event, written in the same transaction
-- as its key_reads row from now on (RecordKeyRead); the reads logged before
-- this migration join the trail here, in their order.
INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
	SELECT at, 'key_read', 'token:' || token_id, 'token', remote, spec, key_type, serial, issuance_id, '', ''
	FROM key_reads ORDER BY id;
