-- Rate-limit budgets (issue 6): the log of what certfleet counted against a
-- CA's limits (orders placed, certificates per registered domain and per
-- exact set of names, failed validations), the reservations that made the
-- entries, and the CA's own rateLimited holds, kept across restarts.
-- Entries are pruned once they are older than every window.
CREATE TABLE rate_reservations (
	id       INTEGER PRIMARY KEY,
	ca       TEXT    NOT NULL,
	spec     TEXT    NOT NULL,
	key_type TEXT    NOT NULL,
	at       INTEGER NOT NULL
) STRICT;
CREATE INDEX rate_reservations_at ON rate_reservations (at);

CREATE TABLE rate_log (
	id          INTEGER PRIMARY KEY,
	ca          TEXT    NOT NULL,
	bucket      TEXT    NOT NULL,
	at          INTEGER NOT NULL,
	reservation INTEGER,
	refundable  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX rate_log_bucket ON rate_log (ca, bucket, at);
CREATE INDEX rate_log_reservation ON rate_log (reservation) WHERE reservation IS NOT NULL;
CREATE INDEX rate_log_at ON rate_log (at);

CREATE TABLE rate_holds (
	ca      TEXT    NOT NULL,
	account TEXT    NOT NULL,
	until   INTEGER NOT NULL,
	reason  TEXT    NOT NULL,
	set_at  INTEGER NOT NULL,
	PRIMARY KEY (ca, account)
) STRICT;
