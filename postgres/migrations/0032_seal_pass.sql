-- Sealing keys stored before the master key (issue 17), as in the SQLite
-- store's 0032_seal_pass.sql: one row saying whether a compaction (VACUUM
-- FULL of the tables that held plaintext keys) is owed, the keys sealed in
-- all, and when it last changed.
CREATE TABLE seal_pass (
	id           integer PRIMARY KEY CHECK (id = 1),
	compact_owed integer     NOT NULL,
	sealed       bigint      NOT NULL,
	updated_at   timestamptz NOT NULL
);
