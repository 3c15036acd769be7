-- Inventory sources (issue 18): the specs a source (PostgreSQL table, LDAP,
-- conf.d directory) no longer declares, and since when. A spec is withdrawn
-- only once it has been missing for the source's grace period; keeping the
-- time here makes the grace hold across restarts, one-shot runs (certfleet
-- issue) and instances.
CREATE TABLE inventory_pending (
	source        TEXT    NOT NULL,
	name          TEXT    NOT NULL,
	missing_since INTEGER NOT NULL,
	PRIMARY KEY (source, name)
) STRICT;
