-- Inventory sources (issue 18): the specs a source (PostgreSQL table, LDAP,
-- conf.d directory) no longer declares, and since when; as in the SQLite
-- store's 0015_inventory.sql.
CREATE TABLE inventory_pending (
	source        text COLLATE "C" NOT NULL,
	name          text COLLATE "C" NOT NULL,
	missing_since timestamptz NOT NULL,
	PRIMARY KEY (source, name)
);
