-- An operator's forced renewal (issue 15, finding 6: a retry of a healthy
-- certificate placed no order and said nothing): when it was asked for,
-- NULL when nobody did. The issuance it brings clears it.
ALTER TABLE jobs ADD COLUMN renew_requested_at timestamptz;
