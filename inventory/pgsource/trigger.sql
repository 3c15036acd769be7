-- certfleet inventory source: tell certfleet when the table changes, so
-- that it re-reads it at once instead of at its next scheduled read
-- (docs/inventory.md). Replace customer_domains by the table your query
-- reads (for a view, install it on each table under the view) and
-- certfleet_inventory by the source's channel if you changed it. Run it
-- once, as the table's owner; it is safe to run again.
--
-- A statement-level trigger sends one notification per statement, however
-- many rows it changed, and PostgreSQL delivers it only when the
-- transaction commits: certfleet then reads what was committed.
CREATE OR REPLACE FUNCTION certfleet_inventory_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify(TG_ARGV[0], TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
	RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS certfleet_inventory ON customer_domains;
CREATE TRIGGER certfleet_inventory
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON customer_domains
	FOR EACH STATEMENT EXECUTE FUNCTION certfleet_inventory_notify('certfleet_inventory');
