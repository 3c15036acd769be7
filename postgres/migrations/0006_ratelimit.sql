-- Rate-limit budgets (issue 6), as in the SQLite store's 0006_ratelimit.sql:
-- the log of what certfleet counted against a CA's limits, the reservations
-- that made the entries, and the CA's own rateLimited holds. Reservations
-- are made under a transaction-scoped advisory lock per CA, so instances
-- sharing the database never both take the last slot of a bucket.
CREATE TABLE rate_reservations (
	id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ca       text        NOT NULL,
	spec     text        NOT NULL,
	key_type text        NOT NULL,
	at       timestamptz NOT NULL
);
CREATE INDEX rate_reservations_at ON rate_reservations (at);

CREATE TABLE rate_log (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ca          text COLLATE "C" NOT NULL,
	bucket      text COLLATE "C" NOT NULL,
	at          timestamptz NOT NULL,
	reservation bigint,
	refundable  boolean NOT NULL DEFAULT false
);
CREATE INDEX rate_log_bucket ON rate_log (ca, bucket, at);
CREATE INDEX rate_log_reservation ON rate_log (reservation) WHERE reservation IS NOT NULL;
CREATE INDEX rate_log_at ON rate_log (at);

CREATE TABLE rate_holds (
	ca      text COLLATE "C" NOT NULL,
	account text COLLATE "C" NOT NULL,
	until   timestamptz NOT NULL,
	reason  text        NOT NULL,
	set_at  timestamptz NOT NULL,
	PRIMARY KEY (ca, account)
);
