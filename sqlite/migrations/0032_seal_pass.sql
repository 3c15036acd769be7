-- Sealing keys stored before the master key (issue 17). One row: whether a
-- compaction is owed (compact_owed = 1 from the first batch of plaintext
-- keys sealed until the file has been vacuumed and the WAL truncated, so
-- the freed pages that still hold the plaintext are gone), the keys the
-- pass has sealed in all, and when it last changed. A crash between the
-- last batch and the compaction leaves compact_owed = 1, and the next pass
-- compacts.
CREATE TABLE seal_pass (
	id           INTEGER PRIMARY KEY CHECK (id = 1),
	compact_owed INTEGER NOT NULL,
	sealed       INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
) STRICT;
