-- The mark of a new order about to be placed (issue 16): JSON of
-- certfleet.OrderPlacing, '' for none. A job taken over with a mark and no
-- pending_order_url had its order created at the CA before the URL was
-- saved; the taker looks the order up instead of placing a second one.
-- As in the SQLite store's 0034_placing_order.sql.
ALTER TABLE jobs ADD COLUMN placing_order text NOT NULL DEFAULT '';
