-- Aggregated key reads (issue 17), as in the SQLite store's
-- 0033_key_read_count.sql: how many reads a key_reads row stands for.
ALTER TABLE key_reads ADD COLUMN count integer NOT NULL DEFAULT 1;
