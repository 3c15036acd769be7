-- Aggregated key reads (issue 17): Caddy asks for a certificate and its key
-- at every TLS handshake; a consumer re-reading the same key version is one
-- row per interval carrying how many reads it stands for. Rows written
-- before hold one read each.
ALTER TABLE key_reads ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
