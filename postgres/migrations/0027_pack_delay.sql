-- The pack delay (issue 14): changed_at is when the first change of a
-- job's spec not yet taken into an order was synced (the job's creation,
-- a name added to or removed from its pack); NULL when none is pending.
-- Orders of certificates requested over the API wait until changed_at
-- plus [api] pack_delay, so that requests arriving together share one
-- order. It is in the store so that every instance and a restart keep
-- the same window.
ALTER TABLE jobs ADD COLUMN changed_at timestamptz;
